// Command-line parsing with CLI11 (2.x) and the list syntaxes of --layers and --k.
#include "options.hpp"

#include <algorithm>
#include <charconv>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex::app {
namespace {

int parse_non_negative(std::string_view token, const char* option) {
  int value = -1;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (token.empty() || ec != std::errc() || ptr != token.data() + token.size() || value < 0)
    throw UsageError(fmt::format("{}: '{}' is not a non-negative integer", option, token));
  return value;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const auto pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

constexpr const char* kFooter = R"(Exit codes: 0 success, 2 bad arguments or output directory, 3 bad model files
(the message names the file and tensor), 4 I/O, library or internal failure.

Examples:
  mpirun -np 8 vindex_mpi --model /data/Kimi-K2-Instruct --out kimi-vindex
  mpirun -np 2 vindex_mpi --model tests/fixtures/kimi_k2_tiny --out demo --layers 0-2 --k 16,64
  mpirun -np 8 vindex_mpi --model /data/Qwen3-30B-A3B --out qwen --phases 1,2 --projections down,gate,up
  vindex_mpi --model /data/Kimi-K2-Instruct --dry-run
  vindex_mpi inspect --model /data/Kimi-K2-Instruct   (what the checkpoint holds; see inspect --help)
  vindex_mpi merge --config JOB.toml                  (join the slices of an array job; see merge --help)
  mpirun -np 2 vindex_mpi cka A.h5 B.h5 --out DIR     (cross-model CKA of two pooled captures; see cka --help))";

}  // namespace

std::set<int> parse_layer_list(const std::string& text) {
  std::set<int> layers;
  for (std::string_view token : split(text, ',')) {
    const auto dash = token.find('-');
    if (dash == std::string_view::npos) {
      layers.insert(parse_non_negative(token, "--layers"));
      continue;
    }
    const int lo = parse_non_negative(token.substr(0, dash), "--layers");
    const int hi = parse_non_negative(token.substr(dash + 1), "--layers");
    if (hi < lo) throw UsageError(fmt::format("--layers: range '{}' runs backwards", token));
    if (hi - lo > 100000) throw UsageError(fmt::format("--layers: range '{}' is implausibly long", token));
    for (int l = lo; l <= hi; ++l) layers.insert(l);
  }
  return layers;
}

std::vector<int> parse_k_list(const std::string& text) {
  std::vector<int> ks;
  for (std::string_view token : split(text, ',')) {
    const int k = parse_non_negative(token, "--k");
    if (k == 0) throw UsageError("--k: k must be at least 1");
    ks.push_back(k);
  }
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  return ks;
}

std::vector<Projection> parse_projection_list(const std::string& text) {
  std::vector<bool> wanted(kProjections.size(), false);
  for (std::string_view token : split(text, ',')) {
    bool known = false;
    for (Projection p : kProjections) {
      const std::string_view full = projection_name(p);  // "gate_proj"
      if (token == full || token == full.substr(0, full.size() - 5)) {
        wanted[static_cast<std::size_t>(p)] = true;
        known = true;
      }
    }
    if (!known) throw UsageError(fmt::format("--projections: '{}' is not one of down, gate, up", token));
  }
  std::vector<Projection> out;
  for (Projection p : kProjections)
    if (wanted[static_cast<std::size_t>(p)]) out.push_back(p);
  return out;
}

std::vector<int> parse_phase_list(const std::string& text) {
  std::vector<int> phases;
  for (std::string_view token : split(text, ',')) {
    const int phase = parse_non_negative(token, "--phases");
    if (phase < 1 || phase > 3) throw UsageError(fmt::format("--phases: there is no phase {} (phases: 1, 2, 3)", phase));
    phases.push_back(phase);
  }
  std::sort(phases.begin(), phases.end());
  phases.erase(std::unique(phases.begin(), phases.end()), phases.end());
  return phases;
}

std::pair<int, int> parse_slice(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) throw UsageError(fmt::format("--slice: '{}' is not I/N", text));
  const int i = parse_non_negative(std::string_view(text).substr(0, slash), "--slice");
  const int n = parse_non_negative(std::string_view(text).substr(slash + 1), "--slice");
  if (n < 1 || n > 100000 || i >= n) throw UsageError(fmt::format("--slice: '{}' needs 0 <= I < N", text));
  return {i, n};
}

ParseResult parse_command_line(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);

  CLI::App app{"vindex_mpi: singular-value spectra of every expert matrix of a Mixture-of-Experts checkpoint,\n"
               "computed across MPI ranks and reduced to per-layer statistics (phase 1: expert projections; phase 2:\n"
               "routers).",
               "vindex_mpi"};
  app.footer(kFooter);
  app.set_config("--config", "", "Read options from a TOML file (key = value per option, e.g. jobs/*.toml)");
  RunRequest& r = o.request;
  std::string ks_text = std::to_string(kDefaultK);
  std::string precision = "auto";
  std::string backend = "cpu";
  std::string layers_text;
  app.add_option("--model", o.model, "Checkpoint directory: config.json and model.safetensors.index.json + shards, "
                                     "or a single model.safetensors; or a GGUF file (or a directory holding one)")
      ->required();
  app.add_option("--out", o.out, "Output directory for vindex.h5 and the JSON files (must be empty or absent)");
  app.add_option("--layers", layers_text, "Layers to analyse, e.g. 0,1,15-20 (default: all)");
  app.add_option("--k", ks_text, "k values of var@k, comma-separated (default: 64)");
  std::string phases_text = "1";
  std::string projections_text = "down";
  app.add_option("--phases", phases_text, "Phases, comma-separated: 1 (expert spectra), 2 (router spectra), 3 (routing "
                                          "and activation statistics from --activations) (default: 1)");
  app.add_option("--activations", o.activations, "Phase 3: the hidden states an inference engine captured "
                                                  "(tools/capture/capture.py; format in docs/phase3.md)");
  app.add_option("--phase3-tokens", r.phase3_tokens,
                 fmt::format("Phase 3: tokens sampled for C1, C3 and C5, at most 4096: rank 0 holds an S x S matrix "
                             "per layer (default: {})", kDefaultSampledTokens))
      ->check(CLI::Range(2, 4096));
  app.add_option("--projections", projections_text, "Phase 1's projections of every dense MLP, routed and shared "
                                                    "expert: down, gate, up, comma-separated (default: down)");
  app.add_option("--backend", backend, "Spectrum backend: cpu (LAPACK), cuda (one GPU per rank), auto (cuda when a "
                                       "GPU is visible, else cpu) (default: cpu)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_flag("--share-gpus", o.share_gpus, "cuda: allow more ranks on a node than it has GPUs (they share them)");
  app.add_option("--host-helpers", o.host_helpers, "cuda: host threads that solve a share of the eigenvalue problems "
                                                   "with LAPACK (default: the rank's threads minus one)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--threads", o.threads, "Matrices computed concurrently per rank (default: the cores available "
                                         "to the rank, shared among the node's ranks)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--precision", precision, "Gram matrix precision: auto (float32 where its error bound meets the "
                                           "accuracy targets, else float64), fp32, fp64 (default: auto)")
      ->check(CLI::IsMember({"auto", "fp32", "fp64"}));
  app.add_option("--name", o.name, "Model name written to the outputs (default: config.json _name_or_path, "
                                   "else the directory name)");
  app.add_option("--progress-seconds", o.progress_seconds,
                 "Seconds between progress lines when stderr is not a terminal (default: 30)")
      ->check(CLI::Range(0.1, 86400.0));
  app.add_flag("--dry-run", o.dry_run, "Print the plan (items, bytes, estimated cost per rank) and exit");
  app.add_flag("--overwrite", o.overwrite, "Allow a non-empty output directory (its vindex files are replaced and an "
                                          "unfinished run's journal is discarded)");
  app.add_flag("--resume", o.resume, "Finish the run journaled in --out: matrices already done are read back, not "
                                     "recomputed (a fresh start when there is no journal)");
  app.add_flag("--verify-all", o.verify_all, "With --resume: re-read every matrix reused from the journal and check "
                                            "its weight digest against the model's bytes (costs a read of those "
                                            "matrices)");
  app.add_option("--journal-seconds", o.journal_seconds,
                 "Seconds between the batches each rank appends to the resume journal (default: 30)")
      ->check(CLI::Range(0.01, 86400.0));
  std::string slice_text;
  app.add_option("--slice", slice_text, "I/N: compute only the I-th (from 0) of N cost-balanced slices of the layers, "
                                        "into OUT/slices/III-of-NNN (Slurm arrays; join with `vindex_mpi merge`)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return {std::nullopt, app.help()};
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    throw UsageError(what);
  }
  if (o.out.empty() && !o.dry_run) throw UsageError("--out is required (unless --dry-run)");
  if (o.resume && o.overwrite) throw UsageError("--resume and --overwrite contradict each other: finish the run, or start over");
  if (o.verify_all && !o.resume) throw UsageError("--verify-all checks what --resume reuses: add --resume");
  if (!slice_text.empty()) r.slice = parse_slice(slice_text);
  r.ks = parse_k_list(ks_text);
  r.phases = parse_phase_list(phases_text);
  r.projections = parse_projection_list(projections_text);
  const bool phase3 = r.has_phase(3);
  if (phase3 && o.activations.empty()) throw UsageError("--phases 3 needs --activations FILE (tools/capture/capture.py writes one)");
  if (!phase3 && !o.activations.empty()) throw UsageError("--activations is read by phase 3 only: add 3 to --phases");
  if (phase3 && r.slice) throw UsageError("--slice: phase 3 runs in one job over all layers; run it without --slice");
  r.precision = precision == "fp32" ? PrecisionPolicy::fp32
              : precision == "fp64" ? PrecisionPolicy::fp64
                                    : PrecisionPolicy::automatic;
  r.backend = parse_backend_choice(backend);
  // Syntax errors now, range checks once the model is read (RunRequest::selected_layers).
  if (!layers_text.empty()) r.layers = parse_layer_list(layers_text);
  return {std::move(o), ""};
}

}  // namespace vindex::app
