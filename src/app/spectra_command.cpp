// Phases 1 and 2: the spectra of every expert projection asked for and of every MoE router ->
// per-layer statistics, across MPI ranks.
//
// Failure handling: every stage that can fail on some ranks only is followed by a failure
// agreement (mpi/agreement.hpp), and the compute stage carries failures in its progress rounds,
// so a bad tensor found by any rank ends the whole job promptly with that rank's message.
//
// No lost work: each rank journals what it finishes (vindex/journal.hpp); with --resume, rank 0
// reads the journals, tells every rank which matrices are done, and only the rest is computed.
#include "spectra_command.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../mpi/agreement.hpp"
#include "../mpi/broadcast.hpp"
#include "../mpi/gather.hpp"
#include "../mpi/host_table.hpp"
#include "../mpi/progress_exchange.hpp"
#include "backend_factory.hpp"
#include "model_name.hpp"
#include "phase3_stage.hpp"
#include "spectra_outputs.hpp"
#include "plan_report.hpp"
#include "slices.hpp"
#include "vindex/aggregate.hpp"
#include "vindex/capture_file.hpp"
#include "vindex/checkpoint.hpp"
#include "vindex/journal.hpp"
#include "vindex/layout.hpp"
#include "vindex/output_files.hpp"
#include "vindex/progress.hpp"
#include "vindex/rank_computation.hpp"
#include "vindex/router_bias.hpp"
#include "vindex/run_identity.hpp"
#include "vindex/version.hpp"

namespace vindex::app {
namespace {

using ojson = nlohmann::ordered_json;

struct Prepared {
  Checkpoint checkpoint;
  ModelLayout layout;
  std::vector<WorkItem> items;      // the whole plan of this run (or slice)
  std::vector<int> selected_layers; // before slicing
  RunIdentity identity;
  std::filesystem::path out;        // --out, or the slice's directory
  std::string model_name;
  BackendKind backend = BackendKind::cpu;
  std::optional<CaptureFile> capture;  // phase 3's, opened and checked against the layout once
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

Prepared prepare(const Options& o) {
  Checkpoint ckpt = Checkpoint::open(o.model);
  ModelLayout layout = detect_layout(ckpt);
  std::vector<int> selected = select_layers(o, layout);
  std::vector<int> layers = selected;
  // A capture that does not fit the model is refused now, before any spectrum is computed.
  std::optional<CaptureFile> capture;
  if (std::find(o.phases.begin(), o.phases.end(), 3) != o.phases.end()) capture = CaptureFile::open(o.activations, layout);
  const BackendKind backend = choose_backend(o);
  std::vector<std::string> projections;
  for (Projection p : o.projections) projections.push_back(projection_name(p));
  RunIdentity identity{tool_name(), kGitCommit, ckpt.fingerprint(), backend_name(backend), precision_policy_name(o.precision),
                       o.ks, o.phases, projections, layers};
  const PlanRequest request = identity.plan_request();
  std::vector<WorkItem> items = plan_items(layout, ckpt, layers, request);
  std::filesystem::path out = o.out;
  if (o.slice) {
    const auto [index, count] = *o.slice;
    if (static_cast<std::size_t>(count) > selected.size())
      throw UsageError(fmt::format("--slice {}/{}: there are only {} layers to slice; use at most that many slices",
                                   index, count, selected.size()));
    layers = slice_layers(items, selected, index, count);
    items = plan_items(layout, ckpt, layers, request);
    if (!o.out.empty()) {
      std::error_code ec;
      if (std::filesystem::is_symlink(std::filesystem::symlink_status(slices_root(o.out), ec)))
        throw UsageError(fmt::format("--out {}: slices/ is a symbolic link; the slices must lie inside --out", o.out.string()));
      out = slice_directory(o.out, index, count);
    }
  }
  identity.layers = layers;
  std::string name = model_name_of(o.name, ckpt);
  return Prepared{std::move(ckpt),  std::move(layout), std::move(items), std::move(selected), std::move(identity),
                  std::move(out),   std::move(name),   backend,          std::move(capture)};
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

ojson provenance_json(const RunContext& ctx, const Prepared& prep, const SpectrumBackend& backend, double peak_rss_mib,
                      double elapsed, std::size_t resumed, const std::vector<mpi::HostRanks>& hosts) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  ojson p;
  p["tool"] = tool_name();
  p["git_commit"] = kGitCommit;
  p["command_line"] = ctx.options.command_line;
  p["model_dir"] = ctx.options.model.string();
  p["run_identity"] = prep.identity.to_json();
  if (ctx.options.slice)
    p["slice"] = {{"index", ctx.options.slice->first}, {"count", ctx.options.slice->second},
                  {"selected_layers", prep.selected_layers}};
  p["ranks"] = ctx.comm.size();
  p["threads_per_rank"] = ctx.threads;
  p["backend"] = backend.name();
  p["backend_detail"] = backend.description();
  p["precision_policy"] = precision_policy_name(ctx.options.precision);
  p["versions"] = library_versions(mpi::mpi_library_version());
  p["host_rank0"] = host;
  p["hosts"] = ojson::array();
  for (const mpi::HostRanks& h : hosts) {
    ojson ranks = ojson::array();
    for (std::size_t i = 0; i < h.ranks.size(); ++i)
      ranks.push_back({{"rank", h.ranks[i]}, {"node_rank", h.node_ranks[i]}});
    p["hosts"].push_back({{"name", h.name}, {"ranks", std::move(ranks)}});
  }
  p["started_utc"] = ctx.started_utc;
  p["elapsed_seconds"] = elapsed;
  p["resumed_matrices"] = resumed;
  p["peak_rss_mib_max_rank"] = peak_rss_mib;
  return p;
}

// What rank 0 found in the journal, and which plan items that covers.
struct Resumed {
  std::vector<MatrixResult> results;
  std::vector<std::uint64_t> done_items;  // indices into Prepared::items
  std::size_t files = 0, torn = 0;
};

Resumed read_resume_journal(const Prepared& prep) {
  JournalContents contents = read_journals(prep.out, prep.identity);
  std::map<MatrixKey, std::uint64_t> index_of;
  for (std::size_t i = 0; i < prep.items.size(); ++i) index_of.emplace(prep.items[i].key, i);
  Resumed resumed{{}, {}, contents.files, contents.torn_records};
  for (MatrixResult& r : contents.results) {
    const auto it = index_of.find(r.key);
    if (it == index_of.end())  // cannot happen with a matching identity; refuse rather than guess
      throw UsageError(fmt::format("--out {}: the journal holds layer {} {} expert {}, which this run does not plan",
                                   prep.out.string(), r.key.layer, r.key.group(), r.key.expert));
    resumed.done_items.push_back(it->second);
    resumed.results.push_back(std::move(r));
  }
  return resumed;
}

// 64 bits that name this run's journal files: time and rank 0's process id.
std::uint64_t new_run_id() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()) ^
         (static_cast<std::uint64_t>(::getpid()) << 40);
}

}  // namespace

int run_spectra(const RunContext& ctx) {
  const Options& o = ctx.options;
  const mpi::Communicator& comm = ctx.comm;

  std::optional<Prepared> prep;
  if (auto code = run_stage(ctx, [&] { prep = prepare(o); })) return *code;
  // --backend auto on nodes that differ (some with GPUs, some without): one backend for the job.
  if (o.backend == "auto") {
    const bool cuda_everywhere = -mpi::max_over_ranks(comm, prep->backend == BackendKind::cuda ? -1.0 : 0.0) > 0.5;
    if (!cuda_everywhere && prep->backend == BackendKind::cuda) {
      prep->backend = BackendKind::cpu;
      prep->identity.backend = backend_name(BackendKind::cpu);
    }
  }
  Resumed resumed;
  std::vector<RouterBias> router_biases;  // rank 0, phase 2: read (and checked) before any spectrum
  std::optional<OutputLock> lock;  // rank 0 holds --out for the whole run
  if (auto code = run_stage(ctx, [&] {
        if (!comm.is_root() || o.dry_run) return;
        // The router biases are written at the end; a NaN among them must not cost the whole run.
        if (prep->identity.plan_request().routers)
          router_biases = read_router_biases(prep->layout, prep->checkpoint, prep->identity.layers);
        const OutputMode mode = o.resume ? OutputMode::resume : o.overwrite ? OutputMode::overwrite : OutputMode::fresh;
        lock.emplace(prepare_output_directory(prep->out, mode, vindex_output_files()));
        if (o.resume) resumed = read_resume_journal(*prep);
      }))
    return *code;

  // Phase 3 (when asked) first: it takes minutes where the spectra may take hours, so a capture found
  // bad (a NaN deep in a layer) ends the job before any spectrum is computed. Each rank computes
  // its share of the layers, rank 0 gathers them; the results go into the same set of files.
  std::optional<Phase3Results> phase3;
  if (!o.dry_run && prep->capture) {
    std::vector<std::byte> share;
    if (auto code = run_stage(ctx, [&] {
          share = compute_phase3_share(comm, prep->checkpoint, prep->layout, prep->identity.layers, *prep->capture,
                                       o.phase3_tokens);
        }))
      return *code;
    if (auto code = run_stage(ctx, [&] {
          phase3 = gather_phase3(comm, share, prep->layout, *prep->capture, o.phase3_tokens);
        }))
      return *code;
  }
  // Every rank learns which matrices are done and plans the rest identically.
  std::vector<bool> done(prep->items.size(), false);
  std::uint64_t run_id = 0;
  if (!o.dry_run) {
    for (std::uint64_t i : mpi::broadcast_from_root(comm, resumed.done_items)) done.at(i) = true;
    run_id = mpi::broadcast_from_root(comm, {new_run_id()}).at(0);
  }
  std::vector<WorkItem> todo;
  std::vector<double> costs;
  for (std::size_t i = 0; i < prep->items.size(); ++i)
    if (!done[i]) {
      todo.push_back(prep->items[i]);
      costs.push_back(prep->items[i].cost);
    }
  const std::vector<std::size_t> bounds = partition_contiguous(costs, comm.size());

  if (o.dry_run) {
    if (comm.is_root()) fmt::print("{}", format_plan(prep->model_name, todo, bounds, ctx.threads));
    return 0;
  }

  const auto r = static_cast<std::size_t>(comm.rank());
  const std::span<const WorkItem> mine(todo.data() + bounds[r], bounds[r + 1] - bounds[r]);
  std::unique_ptr<SpectrumBackend> backend;
  // After a failure the journal is kept for --resume, unless a fresh run found the model itself
  // bad (exit 3): that model must change before anything is computed from it again. Every rank
  // gets here with the same code; all close their journals before rank 0 removes them.
  std::optional<JournalWriter> journal;
  const auto failed = [&](int code) {
    journal.reset();
    mpi::max_over_ranks(comm, 0.0);  // a barrier: every journal file is closed
    if (comm.is_root() && !o.resume && code == static_cast<int>(ExitCode::bad_input)) {
      std::error_code ec;
      std::filesystem::remove_all(prep->out / kJournalDirectory, ec);
    }
    return code;
  };
  if (auto code = run_stage(ctx, [&] {
        backend = make_backend(ctx, prep->backend);
        journal.emplace(prep->out, fmt::format("run-{:016x}-rank-{:05d}.vjl", run_id, comm.rank()), prep->identity,
                        o.journal_seconds);
      }))
    return failed(*code);
  RankComputation work(*backend, prep->checkpoint, prep->layout, mine, o.ks, &*journal);

  std::optional<ProgressPrinter> progress;
  if (comm.is_root() && !prep->items.empty()) {
    fmt::print(stderr, "vindex_mpi {}: {} -- {} matrices on {} rank(s) x {} thread(s), backend {}\n", kVersion,
               prep->model_name, todo.size(), comm.size(), ctx.threads, backend->name());
    if (o.resume)
      fmt::print(stderr, "vindex_mpi: resuming: {} of {} matrices already done ({} journal file(s){}); {} to compute\n",
                 resumed.results.size(), prep->items.size(), resumed.files,
                 resumed.torn ? fmt::format(", {} incomplete final record(s) ignored", resumed.torn) : "", todo.size());
    // Under mpirun only rank 0's stdout may be a terminal (Open MPI gives stderr a pipe): update in
    // place on whichever stream is one, else write plain lines to stderr (logs).
    std::FILE* stream = isatty(fileno(stderr)) ? stderr : isatty(fileno(stdout)) ? stdout : stderr;
    const PlanRequest request = prep->identity.plan_request();
    const char* label = request.phase1 && request.routers ? "phases 1+2" : request.routers ? "phase 2" : "phase 1";
    progress.emplace(label, todo.size(), stream, isatty(fileno(stream)) != 0, o.progress_seconds);
  }
  work.start();
  const auto outcome = mpi::exchange_progress_until_done(comm, work, [&](std::size_t n) {
    if (progress) progress->update(n);
  });
  work.join();
  if (progress) progress->finish(outcome.global_done);
  if (auto code = agree(ctx, work.failed() ? work.error() : nullptr)) return failed(*code);

  std::vector<std::byte> encoded;
  if (auto code = run_stage(ctx, [&] {
        journal->flush();
        journal.reset();
        encode_results(work.take_results(), encoded);
      }))
    return failed(*code);
  const double peak_rss = mpi::max_over_ranks(comm, peak_rss_mib());
  const std::vector<mpi::HostRanks> hosts = mpi::gather_host_table(comm);
  const auto code = run_stage(ctx, [&] {
           std::vector<MatrixResult> all = mpi::gather_results(comm, encoded);
           encoded = {};
           if (!comm.is_root()) return;
           const std::size_t computed = all.size();
           for (MatrixResult& m : resumed.results) all.push_back(std::move(m));
           const PlanRequest request = prep->identity.plan_request();
           VindexTables tables = assemble_tables(std::move(all), prep->items, prep->layout, o.ks, request);
           tables.router_biases = std::move(router_biases);
           tables.phase3 = std::move(phase3);
           const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count();
           const ojson provenance =
               provenance_json(ctx, *prep, *backend, peak_rss, elapsed, resumed.done_items.size(), hosts);
           const std::string from_journal =
               o.resume ? fmt::format(" ({} computed, {} from the journal)", computed, resumed.done_items.size()) : "";
           const std::string headline = fmt::format("{} -- {}, {} matrices{}, {} rank(s), {:.1f} s", prep->model_name,
                                                    describe_request(request, tables.phase3.has_value()),
                                                    prep->items.size(), from_journal, comm.size(), elapsed);
           write_spectra_outputs(prep->out, tables, prep->model_name, prep->layout, provenance, headline);
           // The outputs are complete: the journal has served its purpose.
           std::error_code ec;
           std::filesystem::remove_all(prep->out / kJournalDirectory, ec);
         });
  return code ? failed(*code) : 0;
}

}  // namespace vindex::app
