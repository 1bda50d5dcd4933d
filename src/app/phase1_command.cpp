// Phase 1: per-expert down_proj spectra -> per-layer statistics, across MPI ranks.
//
// Failure handling: every stage that can fail on some ranks only is followed by a failure
// agreement (mpi/agreement.hpp), and the compute stage carries failures in its progress rounds,
// so a bad tensor found by any rank ends the whole job promptly with that rank's message.
#include "phase1_command.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <functional>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../mpi/agreement.hpp"
#include "../mpi/gather.hpp"
#include "../mpi/progress_exchange.hpp"
#include "model_name.hpp"
#include "plan_report.hpp"
#include "vindex/aggregate.hpp"
#include "vindex/checkpoint.hpp"
#include "vindex/hdf5_output.hpp"
#include "vindex/json_output.hpp"
#include "vindex/layout.hpp"
#include "vindex/output_files.hpp"
#include "vindex/progress.hpp"
#include "vindex/rank_computation.hpp"
#include "vindex/version.hpp"

namespace vindex::app {
namespace {

using ojson = nlohmann::ordered_json;

// Everything a phase-1 run writes into --out.
const std::vector<std::string> kOutputFiles{"vindex.h5", "phase1_moe_svd.json", "phase1_moe_svd_agg.json",
                                            "moe_config.json"};

struct Prepared {
  Checkpoint checkpoint;
  ModelLayout layout;
  std::vector<WorkItem> items;
  std::vector<std::size_t> bounds;  // rank r computes items [bounds[r], bounds[r+1])
  std::string model_name;
};

std::vector<int> select_layers(const Options& o, const ModelLayout& layout) {
  std::vector<int> layers;
  if (o.layers.empty()) {
    for (const LayerLayout& l : layout.layers) layers.push_back(l.index);
    return layers;
  }
  for (int l : parse_layer_list(o.layers)) {
    if (l >= layout.num_layers)
      throw UsageError(fmt::format("--layers: layer {} does not exist (the model has layers 0-{})", l, layout.num_layers - 1));
    layers.push_back(l);
  }
  return layers;
}

Prepared prepare(const RunContext& ctx) {
  const Options& o = ctx.options;
  Checkpoint ckpt = Checkpoint::open(o.model);
  ModelLayout layout = detect_layout(ckpt);
  const std::vector<int> layers = select_layers(o, layout);
  std::vector<WorkItem> items = plan_phase1_items(layout, ckpt, layers, Projection::down);
  std::vector<double> costs;
  costs.reserve(items.size());
  for (const WorkItem& it : items) costs.push_back(it.cost);
  std::vector<std::size_t> bounds = partition_contiguous(costs, ctx.comm.size());
  std::string name = model_name_of(o.name, ckpt);
  return Prepared{std::move(ckpt), std::move(layout), std::move(items), std::move(bounds), std::move(name)};
}

void report_failure(const RunContext& ctx, const std::exception_ptr& error) {
  // Rank 0 speaks for the job; another rank names itself when it is the one that found the problem.
  const std::string where = ctx.comm.rank() > 0 ? fmt::format(" (rank {} of {})", ctx.comm.rank(), ctx.comm.size()) : "";
  fmt::print(stderr, "vindex_mpi: error{}: {}\n", where, mpi::message_of(error));
  std::fflush(stderr);
}

// Agrees on `local` across ranks; on failure the lowest failing rank reports and every rank gets
// the exit code. MPI errors and failures inside an exchange are not agreed upon (the communicator
// may be broken, or ranks may be waiting in it): they propagate to main, which aborts the job.
std::optional<int> agree(const RunContext& ctx, const std::exception_ptr& local) {
  if (local) {
    try {
      std::rethrow_exception(local);
    } catch (const MpiError&) {
      throw;
    } catch (const CollectiveError&) {
      throw;
    } catch (...) {
    }
  }
  const auto failure = mpi::agree_on_failure(ctx.comm, local);
  if (!failure) return std::nullopt;
  if (failure->rank == ctx.comm.rank()) report_failure(ctx, local);
  return static_cast<int>(failure->code);
}

std::optional<int> run_stage(const RunContext& ctx, const std::function<void()>& stage) {
  std::exception_ptr error;
  try {
    stage();
  } catch (...) {
    error = std::current_exception();
  }
  return agree(ctx, error);
}

ojson provenance_json(const RunContext& ctx, const SpectrumBackend& backend, double peak_rss_mib, double elapsed) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  ojson p;
  p["tool"] = fmt::format("vindex_mpi {}", kVersion);
  p["git_commit"] = kGitCommit;
  p["command_line"] = ctx.options.command_line;
  p["model_dir"] = ctx.options.model.string();
  p["ranks"] = ctx.comm.size();
  p["threads_per_rank"] = ctx.threads;
  p["backend"] = backend.name();
  p["backend_detail"] = backend.description();
  p["precision_policy"] = precision_policy_name(ctx.options.precision);
  p["versions"] = {{"mpi", mpi::mpi_library_version()},
                   {"hdf5", hdf5_library_version()},
                   {"fmt", FMT_VERSION},
                   {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                                 NLOHMANN_JSON_VERSION_PATCH)},
                   {"compiler", __VERSION__}};
  p["host_rank0"] = host;
  p["started_utc"] = ctx.started_utc;
  p["elapsed_seconds"] = elapsed;
  p["peak_rss_mib_max_rank"] = peak_rss_mib;
  return p;
}

void write_outputs(const RunContext& ctx, const Prepared& prep, std::vector<MatrixResult> results,
                   const SpectrumBackend& backend, double peak_rss) {
  const Options& o = ctx.options;
  const Phase1Tables tables = assemble_phase1(std::move(results), prep.items, prep.layout, o.ks);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count();
  const ojson provenance = provenance_json(ctx, backend, peak_rss, elapsed);

  // All four are written under temporary names first and renamed only once all are complete.
  StagedFile h5(o.out, kOutputFiles[0]);
  StagedFile summary(o.out, kOutputFiles[1]);
  StagedFile constants(o.out, kOutputFiles[2]);
  StagedFile config(o.out, kOutputFiles[3]);
  write_vindex_h5(h5.temp_path(), tables, {prep.model_name, fmt::format("vindex_mpi {}", kVersion), provenance.dump()});
  write_file_synced(summary.temp_path(), phase1_summary_json(tables, prep.model_name, provenance).dump(2) + "\n");
  write_file_synced(constants.temp_path(), phase1_constants_json(tables, prep.model_name, provenance).dump(2) + "\n");
  write_file_synced(config.temp_path(), prep.layout.to_json(prep.model_name).dump(2) + "\n");
  const std::array<StagedFile*, 4> staged{&h5, &summary, &constants, &config};
  commit_all(staged);

  fmt::print("\n{} -- phase 1, down_proj, {} matrices, {} rank(s), {:.1f} s\n{}", prep.model_name, prep.items.size(),
             ctx.comm.size(), elapsed, format_layer_table(tables));
  fmt::print("Wrote {}, {}, {}, {}\n", h5.final_path().string(), summary.final_path().string(),
             constants.final_path().string(), config.final_path().string());
  std::fflush(stdout);
}

}  // namespace

int run_phase1(const RunContext& ctx) {
  const Options& o = ctx.options;
  const mpi::Communicator& comm = ctx.comm;

  std::optional<Prepared> prep;
  if (auto code = run_stage(ctx, [&] {
        prep = prepare(ctx);
        if (comm.is_root() && !o.dry_run) prepare_output_directory(o.out, o.overwrite, kOutputFiles);
      }))
    return *code;

  if (o.dry_run) {
    if (comm.is_root()) fmt::print("{}", format_plan(prep->model_name, prep->items, prep->bounds, ctx.threads));
    return 0;
  }

  const auto r = static_cast<std::size_t>(comm.rank());
  const std::span<const WorkItem> mine(prep->items.data() + prep->bounds[r], prep->bounds[r + 1] - prep->bounds[r]);
  const auto backend = make_cpu_backend({ctx.threads, o.precision, o.ks});
  RankComputation work(*backend, prep->checkpoint, prep->layout, mine, o.ks);

  std::optional<ProgressPrinter> progress;
  if (comm.is_root()) {
    fmt::print(stderr, "vindex_mpi {}: {} -- {} matrices on {} rank(s) x {} thread(s), backend {}\n", kVersion,
               prep->model_name, prep->items.size(), comm.size(), ctx.threads, backend->name());
    // Under mpirun only rank 0's stdout may be a terminal (Open MPI gives stderr a pipe): update in
    // place on whichever stream is one, else write plain lines to stderr (logs).
    std::FILE* stream = isatty(fileno(stderr)) ? stderr : isatty(fileno(stdout)) ? stdout : stderr;
    progress.emplace("phase 1", prep->items.size(), stream, isatty(fileno(stream)) != 0, o.progress_seconds);
  }
  work.start();
  const auto outcome = mpi::exchange_progress_until_done(comm, work, [&](std::size_t done) {
    if (progress) progress->update(done);
  });
  work.join();
  if (progress) progress->finish(outcome.global_done);
  if (auto code = agree(ctx, work.failed() ? work.error() : nullptr)) return *code;

  std::vector<std::byte> encoded;
  if (auto code = run_stage(ctx, [&] { encode_results(work.take_results(), encoded); })) return *code;
  const double peak_rss = mpi::max_over_ranks(comm, peak_rss_mib());
  return run_stage(ctx, [&] {
           std::vector<MatrixResult> all = mpi::gather_results(comm, encoded);
           encoded = {};
           if (comm.is_root()) write_outputs(ctx, *prep, std::move(all), *backend, peak_rss);
         })
      .value_or(0);
}

}  // namespace vindex::app
