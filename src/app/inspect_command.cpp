// `vindex_mpi inspect`: the checkpoint's family, layers, experts, tensor names, dtypes and bytes,
// and the estimated phase-1 run time, as text or JSON. Headers only: seconds even for Kimi-K2.
#include "inspect_command.hpp"

#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "model_name.hpp"
#include "plan_report.hpp"
#include "printable.hpp"
#include "subcommand.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"
#include "vindex/base/json_file.hpp"
#include "vindex/model/inventory.hpp"
#include "vindex/model/layout_json.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/run/cost_model.hpp"
#include "vindex/run/plan.hpp"

namespace vindex::app {
namespace {

using ojson = nlohmann::ordered_json;

struct InspectOptions {
  std::filesystem::path model;
  std::filesystem::path outputs;  // --outputs: describe and check an output set instead
  std::string name;
  bool json = false;
  int cores = 0;  // 0: this machine's
  int gpus = 8;
};

constexpr const char* kEstimateNote =
    "CPU: vindex_mpi's CPU backend, rates fitted to one core of the development machine (README, \"Performance\").\n"
    "GPU: rates measured on one H100 with other code (docs/gpu-baselines.md), scaled by m*n^2 (SVD, Gram) and n^3\n"
    "(eigensolver): the seed's method, and the measured parts of a Gram + cuSOLVER path. vindex_mpi's CUDA backend\n"
    "(--backend cuda, built where nvcc is found) has never run on a GPU, so no GPU line is a measured performance\n"
    "of this tool.";

ojson layout_json(const ModelLayout& layout) {
  ojson j;
  j["family"] = family_name(layout.family);
  j["model_type"] = layout.model_type;
  j["architectures"] = layout.architectures;
  if (!layout.gguf_architecture.empty()) {
    j["gguf_architecture"] = layout.gguf_architecture;
    std::set<std::string> types;  // the ggml types of the matrices analysed
    const auto add = [&](const ProjectionSet& s) {
      for (const WeightRef& w : s.by_projection)
        if (w.present()) types.insert(stored_type_name(*w.weight->info));
    };
    for (const LayerLayout& l : layout.layers) {
      add(l.dense);
      for (const ProjectionSet& e : l.routed) add(e);
      if (l.shared) add(*l.shared);
    }
    j["gguf_matrix_types"] = types;
  }
  j["num_hidden_layers"] = layout.num_layers;
  j["dense_layers"] = layout.dense_layers();
  j["moe_layers"] = layout.moe_layers();
  j["skipped_layers"] = layout.skipped_layers;
  j["n_routed_experts"] = layout.n_routed_experts;
  j["n_shared_experts"] = layout.n_shared_experts;
  j["num_experts_per_tok"] = layout.experts_per_token;
  j["hidden_size"] = layout.hidden_size;
  j["intermediate_size"] = layout.intermediate_size;
  j["moe_intermediate_size"] = layout.moe_intermediate_size;
  if (layout.quantization)
    j["quantization"] = quantization_json(*layout.quantization);
  else
    j["quantization"] = nullptr;
  return j;
}

ojson estimate_json(const ModelLayout& layout, const Checkpoint& ckpt, const InspectOptions& o) {
  std::vector<int> layers;
  for (const LayerLayout& l : layout.layers) layers.push_back(l.index);
  const std::vector<WorkItem> items = plan_items(layout, ckpt, layers, PlanRequest{});
  double bytes = 0, cpu = 0, seed = 0, gram_eigen = 0;
  for (const WorkItem& it : items) {
    bytes += static_cast<double>(it.bytes);
    cpu += it.cost;
    seed += estimate_gpu_seed_seconds(it.weight.rows, it.weight.cols);
    gram_eigen += estimate_gpu_gram_eigen_seconds(it.weight.rows, it.weight.cols);
  }
  ojson j;
  j["phase"] = 1;
  j["projection"] = "down_proj";
  j["matrices"] = items.size();
  j["bytes"] = bytes;
  j["cpu_core_seconds"] = cpu;
  j["cpu_cores"] = o.cores;
  j["cpu_wall_seconds"] = cpu / o.cores;
  j["gpu_seed_method_seconds"] = seed;
  j["gpu_gram_cusolver_seconds"] = gram_eigen;
  j["gpus"] = o.gpus;
  j["note"] = kEstimateNote;
  return j;
}

ojson inspect(const InspectOptions& o) {
  const Checkpoint ckpt = Checkpoint::open(o.model);
  ojson j;
  j["model"] = model_name_of(o.name, ckpt);
  j["model_dir"] = ckpt.directory().string();
  j["files"] = {{"listing", ckpt.listing_path().filename().string()},
                {"shards", ckpt.shards().size()},
                {"tensors", ckpt.tensor_names().size()},
                {"tensor_bytes", ckpt.total_tensor_bytes()}};
  ojson patterns = ojson::array();
  for (const TensorPattern& p : summarize_tensor_names(ckpt))
    patterns.push_back({{"pattern", p.pattern},
                        {"tensors", p.count},
                        {"bytes", p.bytes},
                        {"dtypes", p.dtypes},
                        {"shape", p.uniform_shape ? ojson(p.first_shape) : ojson(nullptr)}});
  j["tensor_patterns"] = std::move(patterns);
  try {
    const ModelLayout layout = detect_layout(ckpt);
    j["layout"] = layout_json(layout);
    j["layout_error"] = nullptr;
    ojson groups = ojson::array();
    std::uint64_t matrix_total = 0;
    for (const MatrixBytes& g : matrix_bytes(layout)) {
      groups.push_back({{"group", g.group}, {"matrices", g.matrices}, {"bytes", g.bytes}});
      matrix_total += g.bytes;
    }
    j["matrix_bytes"] = std::move(groups);
    j["other_bytes"] = ckpt.total_tensor_bytes() - matrix_total;
    j["estimate"] = estimate_json(layout, ckpt, o);
  } catch (const InputError& e) {
    // The inventory is still worth showing: it is how a user sees what an unsupported model holds.
    j["layout"] = nullptr;
    j["layout_error"] = e.what();
  }
  return j;
}

std::string format_duration(double seconds) {
  if (seconds < 1) return fmt::format("{:.3g} ms", seconds * 1e3);
  if (seconds < 120) return fmt::format("{:.1f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.1f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

std::string shape_text(const ojson& shape) {
  if (shape.is_null()) return "(various)";
  std::string s;
  for (const auto& d : shape) s += (s.empty() ? "" : "x") + std::to_string(d.get<std::uint64_t>());
  return s.empty() ? "scalar" : s;
}

std::string layer_list_text(const ojson& layers) {
  // Runs of consecutive layers as ranges: "1-3,5".
  std::string out;
  const std::size_t n = layers.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j + 1 < n && layers[j + 1].get<int>() == layers[j].get<int>() + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(layers[i].get<int>());
    if (j > i) out += "-" + std::to_string(layers[j].get<int>());
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

std::string format_text(const ojson& j) {
  std::string out;
  const ojson& files = j["files"];
  out += fmt::format("Model         {}  ({})\n", j["model"].get<std::string>(), j["model_dir"].get<std::string>());
  out += fmt::format("Files         {}: {} shard(s), {} tensors, {}\n", files["listing"].get<std::string>(),
                     files["shards"].get<std::size_t>(), files["tensors"].get<std::size_t>(),
                     format_bytes(files["tensor_bytes"].get<double>()));
  if (const ojson& l = j["layout"]; !l.is_null()) {
    if (l.contains("gguf_architecture"))
      out += fmt::format("Family        {} (GGUF architecture {})\n", l["family"].get<std::string>(),
                         l["gguf_architecture"].get<std::string>());
    else
      out += fmt::format("Family        {} (model_type {}, architectures [{}])\n", l["family"].get<std::string>(),
                         l["model_type"].get<std::string>(),
                         fmt::join(l["architectures"].get<std::vector<std::string>>(), ", "));
    out += fmt::format("Layers        {}: dense {}; MoE {}; skipped {}\n", l["num_hidden_layers"].get<int>(),
                       layer_list_text(l["dense_layers"]), layer_list_text(l["moe_layers"]),
                       layer_list_text(l["skipped_layers"]));
    out += fmt::format("Experts       {} routed per MoE layer, {} per token, {} shared\n",
                       l["n_routed_experts"].get<int>(), l["num_experts_per_tok"].get<int>(),
                       l["n_shared_experts"].get<int>());
    out += fmt::format("Sizes         hidden {}, intermediate {}, moe_intermediate {}\n", l["hidden_size"].get<std::uint64_t>(),
                       l["intermediate_size"].get<std::uint64_t>(), l["moe_intermediate_size"].get<std::uint64_t>());
    const ojson& q = l["quantization"];
    std::string quantization = "none";
    if (!q.is_null() && q["method"] == "mxfp4")
      quantization = "mxfp4 (e2m1, one e8m0 scale per 32 values)";
    else if (!q.is_null() && q["method"] == "bitnet")
      quantization = "bitnet: ternary weights packed four a byte (transformers' offline BitLinear), value (code - 1) / weight_scale";
    else if (!q.is_null() && (q["method"] == "gptq" || q["method"] == "awq"))
      quantization = fmt::format("{} ({}): {}-bit codes, group_size {}{}, value (q - zero) * scale in the scales' dtype",
                                 q["method"].get<std::string>(), q["format"].get<std::string>(), q["bits"].get<int>(),
                                 q["group_size"].get<long long>(),
                                 q.contains("desc_act") && q["desc_act"].get<bool>() ? ", act-order (g_idx)" : "");
    else if (!q.is_null() && q["fp8_scaling"] == "block")
      quantization = fmt::format("{}: e4m3 weights, {}x{} block scales ({}), product in {}", q["method"].get<std::string>(),
                                 q["weight_block_size"][0].get<int>(), q["weight_block_size"][1].get<int>(),
                                 q["scale_tensor"].get<std::string>(), q["product"].get<std::string>());
    else if (!q.is_null())
      quantization = fmt::format("{}: e4m3 weights, one scale per {} ({}), product in {}", q["method"].get<std::string>(),
                                 q["fp8_scaling"] == "tensor" ? "tensor" : "output row",
                                 q["scale_tensor"].get<std::string>(), q["product"].get<std::string>());
    else if (l.contains("gguf_matrix_types"))
      quantization = fmt::format("GGUF types of the matrices: {} (decoded as ggml's dequantize_row_*)",
                                 fmt::join(l["gguf_matrix_types"].get<std::vector<std::string>>(), ", "));
    out += fmt::format("Quantization  {}\n", quantization);
    out += fmt::format("\n{:<24} {:>9} {:>12}\n", "matrices by kind", "count", "bytes");
    for (const ojson& g : j["matrix_bytes"])
      out += fmt::format("{:<24} {:>9} {:>12}\n", g["group"].get<std::string>(), g["matrices"].get<std::size_t>(),
                         format_bytes(g["bytes"].get<double>()));
    out += fmt::format("{:<24} {:>9} {:>12}\n", "everything else", "", format_bytes(j["other_bytes"].get<double>()));
  }

  out += fmt::format("\n{:<64} {:>8} {:>16} {:>12} {:>12}\n", "tensor names ({L} layer, {E} expert)", "tensors",
                     "shape", "dtype", "bytes");
  for (const ojson& p : j["tensor_patterns"]) {
    std::string dtypes;
    for (const auto& [dtype, count] : p["dtypes"].items())
      dtypes += (dtypes.empty() ? "" : ",") + dtype;
    out += fmt::format("{:<64} {:>8} {:>16} {:>12} {:>12}\n", p["pattern"].get<std::string>(),
                       p["tensors"].get<std::size_t>(), shape_text(p["shape"]), dtypes, format_bytes(p["bytes"].get<double>()));
  }

  if (const ojson& e = j["estimate"]; !e.is_null()) {
    const int gpus = e["gpus"].get<int>();
    out += fmt::format("\nEstimated phase-1 time ({} {} matrices, {} to read):\n", e["matrices"].get<std::size_t>(),
                       e["projection"].get<std::string>(), format_bytes(e["bytes"].get<double>()));
    out += fmt::format("  CPU backend                   {:>10} core time;  {:>10} on {} cores\n",
                       format_duration(e["cpu_core_seconds"].get<double>()), format_duration(e["cpu_wall_seconds"].get<double>()),
                       e["cpu_cores"].get<int>());
    out += fmt::format("  GPU, the seed's method        {:>10} GPU time;   {:>10} on {} GPUs\n",
                       format_duration(e["gpu_seed_method_seconds"].get<double>()),
                       format_duration(e["gpu_seed_method_seconds"].get<double>() / gpus), gpus);
    out += fmt::format("  GPU, Gram + cuSOLVER parts    {:>10} GPU time;   {:>10} on {} GPUs\n",
                       format_duration(e["gpu_gram_cusolver_seconds"].get<double>()),
                       format_duration(e["gpu_gram_cusolver_seconds"].get<double>() / gpus), gpus);
    std::string note = e["note"].get<std::string>();
    for (std::size_t pos = 0; (pos = note.find('\n', pos)) != std::string::npos; pos += 3) note.replace(pos, 1, "\n  ");
    out += fmt::format("  {}\n", note);
  }
  return out;
}

// `inspect --outputs DIR`: the output set as its manifest describes it, every file checked against
// it (verify_output_set); a set that does not hold together is exit 3 with the file named.
int inspect_outputs(const InspectOptions& o) {
  const OutputManifest m = verify_output_set(o.outputs);
  const std::filesystem::path agg = o.outputs / "phase1_moe_svd_agg.json";
  nlohmann::json provenance;
  for (const ManifestEntry& f : m.files)
    if (f.name == agg.filename()) {
      const nlohmann::json j = parse_json_strict(read_text_file(agg, f.bytes), agg.string());
      if (j.is_object() && j.contains("provenance")) provenance = j["provenance"];
    }
  ojson report;
  report["outputs"] = o.outputs.string();
  report["run_id"] = m.run_id;
  report["complete"] = true;
  report["model"] = provenance.is_object() ? provenance.value("model_dir", "") : "";
  report["model_fingerprint"] = provenance.is_object() ? provenance.value("model_fingerprint", "") : "";
  report["tool"] = provenance.is_object() ? provenance.value("tool", "") : "";
  report["files"] = ojson::array();
  for (const ManifestEntry& f : m.files) report["files"].push_back({{"name", f.name}, {"bytes", f.bytes}, {"sha256", f.sha256}});
  std::string text;
  if (o.json) {
    text = report.dump(2) + "\n";
  } else {
    text += fmt::format("Output set    {}\n", printable(o.outputs.string()));
    text += fmt::format("Run           {} ({}), complete: every file matches {} and carries the run id\n", m.run_id,
                        printable(report["tool"].get<std::string>()), kManifestFileName);
    text += fmt::format("Model         {} (fingerprint {})\n", printable(report["model"].get<std::string>()),
                        report["model_fingerprint"].get<std::string>());
    for (const ManifestEntry& f : m.files)
      text += fmt::format("  {:<28} {:>12} bytes  sha256 {}\n", f.name, f.bytes, f.sha256);
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int run_inspect(int argc, char** argv) {
  InspectOptions o;
  CLI::App app{"vindex_mpi inspect: what a checkpoint holds -- family, layers, experts, tensor names, dtypes and\n"
               "bytes -- and the estimated phase-1 run time, from the safetensors headers alone (no weight is read).",
               "vindex_mpi inspect"};
  auto* model = app.add_option("--model", o.model, "Checkpoint directory (as for a run)");
  auto* outputs = app.add_option("--outputs", o.outputs, "Instead: an output directory of a run or merge; checks every "
                                                         "file against its manifest and prints the set");
  model->excludes(outputs);
  outputs->excludes(model);
  app.add_option("--name", o.name, "Model name to show (default: config.json _name_or_path, else the directory name)");
  app.add_flag("--json", o.json, "Print JSON instead of text");
  app.add_option("--cores", o.cores, "CPU cores for the wall-time estimate (default: this machine's)")
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--gpus", o.gpus, "GPUs for the wall-time estimate (default: 8)")->check(CLI::Range(1, 1 << 20));
  return run_subcommand(app, "vindex_mpi inspect", argc, argv, [&] {
    if (!o.outputs.empty()) return inspect_outputs(o);
    if (o.model.empty()) throw UsageError("--model DIR (a checkpoint) or --outputs DIR (an output set) is required");
    if (o.cores == 0) o.cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const ojson report = inspect(o);
    const std::string text = o.json ? report.dump(2) + "\n" : format_text(report);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (report["layout_error"].is_null()) return 0;
    fmt::print(stderr, "vindex_mpi inspect: error: {}\n", report["layout_error"].get<std::string>());
    return static_cast<int>(ExitCode::bad_input);
  });
}

}  // namespace vindex::app
