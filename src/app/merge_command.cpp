// `vindex_mpi merge`: joins the slices of an array job (OUT/slices/III-of-NNN, each a complete
// phase-1 output of some layers) into the files one run over all layers would have written.
// Serial and MPI-free: it reads HDF5 and writes the four outputs.
#include "merge_command.hpp"

#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "model_name.hpp"
#include "printable.hpp"
#include "provenance.hpp"
#include "run_context.hpp"
#include "slices.hpp"
#include "spectra_outputs.hpp"
#include "subcommand.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/format/model_fingerprint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/model/router_bias.hpp"
#include "vindex/output/aggregate.hpp"
#include "vindex/output/hdf5_input.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/rank_computation.hpp"
#include "vindex/run/results.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

struct MergeOptions {
  fs::path model;
  fs::path out;
  std::string name;
  bool overwrite = false;
  bool verify_all = false;
  std::vector<fs::path> slices;  // empty: OUT/slices/*
  std::string command_line;
};

struct Slice {
  fs::path dir;
  fs::path h5;
  VindexFileContents contents;
  nlohmann::json provenance;
  std::vector<int> layers;
};

Slice read_slice(const fs::path& dir) {
  Slice s{dir, dir / vindex_output_files()[0], {}, {}, {}};
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir / kManifestFileName, ec)) && !fs::exists(fs::symlink_status(dir / kCommitRecordName, ec)))
    throw InputError(s.h5.string(), "", "missing: that slice did not finish (resume its array task with --resume)");
  // The slice's files must be the committed set its manifest names, each carrying its run id.
  const OutputManifest manifest = verify_output_set(dir);
  s.contents = read_vindex_h5(s.h5);
  if (s.contents.run_id != manifest.run_id)
    throw InputError(s.h5.string(), "", fmt::format("carries run id {}, its manifest {}", s.contents.run_id, manifest.run_id));
  s.provenance = parse_json_strict(s.contents.provenance_json, s.h5.string() + " (provenance)");
  if (!s.provenance.is_object() || !s.provenance.contains("slice") || !s.provenance.contains("run_identity"))
    throw InputError(s.h5.string(), "", "was not written by an array task (no slice or run identity in its provenance)");
  const nlohmann::json& identity = s.provenance.at("run_identity");
  const nlohmann::json& slice = s.provenance.at("slice");
  if (!identity.is_object() || !identity.contains("layers") || !identity.at("layers").is_array() || !slice.is_object() ||
      !slice.contains("selected_layers") || !slice.at("selected_layers").is_array() || !slice.contains("count") ||
      !slice.at("count").is_number_integer() || !slice.contains("index") || !slice.at("index").is_number_integer())
    throw InputError(s.h5.string(), "", "has a malformed slice or run identity in its provenance");
  for (const auto& l : identity.at("layers")) {
    if (!l.is_number_integer()) throw InputError(s.h5.string(), "", "run identity lists a layer that is not an integer");
    s.layers.push_back(l.get<int>());
  }
  return s;
}

int merge(const MergeOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const std::string started_utc = utc_now_iso8601();
  std::vector<fs::path> dirs = o.slices;
  int expected_count = 0;
  if (dirs.empty()) {
    for (const SliceDirectory& d : find_slices(o.out)) dirs.push_back(d.path);
    expected_count = static_cast<int>(dirs.size());
  }

  const Checkpoint ckpt = Checkpoint::open(o.model);
  const ModelLayout layout = detect_layout(ckpt);
  const int threads = std::max(1, usable_cores());
  const ModelFingerprint model_fingerprint = fingerprint_model(ckpt, threads);
  const std::string& fingerprint = model_fingerprint.value;
  fmt::print(stderr, "vindex_mpi merge: model fingerprint {} ({} tensors sampled, {:.1f} MiB read in {:.2f} s)\n",
             fingerprint, model_fingerprint.tensors, static_cast<double>(model_fingerprint.bytes_read) / (1 << 20),
             model_fingerprint.seconds);

  std::vector<Slice> slices;
  for (const fs::path& dir : dirs) {
    fmt::print(stderr, "vindex_mpi merge: reading {}\n", printable(dir.string()));
    slices.push_back(read_slice(dir));
  }
  const Slice& first = slices.front();
  const RunIdentity identity = identity_from_json(first.provenance.at("run_identity"), first.h5.string());
  if (identity.model_fingerprint != fingerprint)
    throw InputError(first.h5.string(), "", fmt::format("was computed from another model than {} (fingerprint {}, the model's {})",
                                                        o.model.string(), identity.model_fingerprint, fingerprint));
  const nlohmann::json& slicing = first.provenance.at("slice");
  const int count = slicing.at("count").get<int>();
  if (expected_count && count != expected_count)
    throw InputError(first.h5.string(), "", fmt::format("belongs to a job of {} slices, but {} are present", count, expected_count));
  if (static_cast<int>(slices.size()) != count)
    throw UsageError(fmt::format("merge: the job has {} slices, {} given", count, slices.size()));

  const PlanRequest request = identity.request().plan();
  std::set<int> covered;
  std::set<int> indices;
  for (const Slice& s : slices) {
    if (const std::string diff = identity_difference(s.provenance.at("run_identity"), identity, true); !diff.empty())
      throw InputError(s.h5.string(), "", fmt::format("was computed differently from {} ({})", first.h5.string(), diff));
    if (s.contents.ks != identity.ks)
      throw InputError(s.h5.string(), "", "its k attribute disagrees with its run identity");
    const nlohmann::json& sl = s.provenance.at("slice");
    if (sl.at("count") != slicing.at("count") || sl.at("selected_layers") != slicing.at("selected_layers"))
      throw InputError(s.h5.string(), "", "belongs to a different array job (slice count or layer selection differs)");
    if (!indices.insert(sl.at("index").get<int>()).second)
      throw InputError(s.h5.string(), "", "is a second copy of the same slice");
    for (int l : s.layers)
      if (!covered.insert(l).second) throw InputError(s.h5.string(), "", fmt::format("layer {} is in two slices", l));
  }
  std::vector<int> selected;
  try {
    selected = slicing.at("selected_layers").get<std::vector<int>>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(first.h5.string(), "", "provenance lacks the job's layer selection");
  }
  for (int l : selected) {
    if (l < 0 || l >= layout.num_layers)
      throw InputError(first.h5.string(), "", fmt::format("selects layer {}, which the model does not have", l));
    if (!covered.count(l)) throw InputError(first.h5.string(), "", fmt::format("no slice holds layer {}", l));
  }
  if (covered.size() != selected.size())
    throw InputError(first.h5.string(), "", "the slices hold layers the job did not select");

  // Every planned matrix exactly once, slice by slice, so a gap names its slice.
  std::vector<MatrixResult> all;
  for (Slice& s : slices) {
    const std::vector<WorkItem> plan = plan_items(layout, ckpt, s.layers, request);
    std::map<MatrixKey, const WorkItem*> planned;
    std::set<MatrixKey> found;
    for (const WorkItem& it : plan) planned.emplace(it.key, &it);
    for (const MatrixResult& r : s.contents.results) {
      const auto it = planned.find(r.key);
      if (it == planned.end() || !found.insert(r.key).second)
        throw InputError(s.h5.string(), "", fmt::format("holds an unplanned or repeated matrix: layer {} {} expert {}",
                                                        r.key.layer, r.key.group(), r.key.expert));
      if (const std::string problem = result_problem(r, *it->second, identity.ks.size()); !problem.empty())
        throw InputError(s.h5.string(), "", fmt::format("layer {} {} expert {}: {}", r.key.layer, r.key.group(),
                                                        r.key.expert, problem));
    }
    if (found.size() != planned.size())
      throw InputError(s.h5.string(), "", fmt::format("holds {} of its {} planned matrices", found.size(), planned.size()));
    if (o.verify_all) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<WorkItem> items;
      std::vector<std::uint64_t> digests;
      for (const MatrixResult& r : s.contents.results) {
        items.push_back(*planned.at(r.key));
        digests.push_back(r.weight_digest);
      }
      const std::uint64_t bytes = verify_weight_digests(ckpt, layout, items, digests, threads, s.h5.string());
      fmt::print(stderr, "vindex_mpi merge: --verify-all: {} matrices of {} re-read ({:.1f} MiB) in {:.2f} s: every weight "
                         "digest matches the model\n",
                 items.size(), printable(s.dir.string()), static_cast<double>(bytes) / (1 << 20),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    for (MatrixResult& r : s.contents.results) all.push_back(std::move(r));
  }
  const std::vector<WorkItem> plan = plan_items(layout, ckpt, selected, request);
  VindexTables tables = assemble_tables(std::move(all), plan, layout, identity.ks, request);
  if (request.routers) tables.router_biases = read_router_biases(layout, ckpt, selected);

  const std::vector<std::string> kept{kSlicesDirectory};
  std::string note;
  const OutputLock lock =
      prepare_output_directory(o.out, o.overwrite ? OutputMode::overwrite : OutputMode::fresh, kept, &note);
  if (!note.empty()) fmt::print(stderr, "vindex_mpi merge: note: --out {}: {}\n", printable(o.out.string()), note);
  const std::string run_id = new_run_id();
  RunIdentity merged = identity;
  merged.layers = selected;
  MergeFacts facts;
  for (const Slice& s : slices)
    facts.merged_from.push_back({{"slice", s.dir.string()}, {"run_id", s.contents.run_id}, {"provenance", s.provenance}});
  facts.backend = first.provenance.value("backend", "");
  facts.verified_all = o.verify_all;
  facts.started_utc = started_utc;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  facts.elapsed_seconds = elapsed;
  const ojson p = merge_provenance({run_id, o.command_line, o.model, merged}, facts);
  const std::string model_name = o.name.empty() ? first.contents.model : printable(o.name);
  write_spectra_outputs(o.out, run_id, tables, model_name, layout, p,
                       fmt::format("{} -- {}, {} matrices merged from {} slices, {:.1f} s", model_name,
                                   describe_request(request), plan.size(), slices.size(), elapsed));
  return 0;
}

}  // namespace

int run_merge(int argc, char** argv) {
  MergeOptions o;
  o.command_line = "vindex_mpi";
  for (int i = 0; i < argc; ++i) o.command_line += std::string(" ") + argv[i];
  CLI::App app{"vindex_mpi merge: joins the slices of an array job -- OUT/slices/III-of-NNN, written by runs with\n"
               "--slice I/N -- into the files of one run over all layers. Every slice must come from the same model,\n"
               "options and build, and every selected layer and matrix must be present exactly once.",
               "vindex_mpi merge"};
  app.set_config("--config", "", "Read --model and --out from a job file (its other keys are ignored)");
  app.allow_config_extras(true);
  app.add_option("--model", o.model, "Checkpoint directory the slices were computed from")->required();
  app.add_option("--out", o.out, "Output directory of the job (the slices are read from OUT/slices/)")->required();
  app.add_option("--name", o.name, "Model name written to the outputs (default: the slices')");
  app.add_flag("--overwrite", o.overwrite, "Allow a non-empty output directory (its vindex files are replaced)");
  app.add_flag("--verify-all", o.verify_all, "Re-read every matrix of every slice from the model and check its weight "
                                            "digest (costs a read of those matrices)");
  app.add_option("slices", o.slices, "Slice directories (default: every OUT/slices/III-of-NNN)");
  return run_subcommand(app, "vindex_mpi merge", argc, argv, [&] { return merge(o); });
}

}  // namespace vindex::app
