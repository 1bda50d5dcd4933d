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
#include "printable.hpp"
#include "slices.hpp"
#include "vindex/aggregate.hpp"
#include "vindex/blas_kernels.hpp"
#include "vindex/capture_file.hpp"
#include "vindex/checkpoint.hpp"
#include "vindex/journal.hpp"
#include "vindex/layout.hpp"
#include "vindex/model_fingerprint.hpp"
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
  // The model fingerprint samples the weights: rank 0 computes it in run_spectra, after the plan.
  RunIdentity identity{tool_name(), kGitCommit, "", backend_name(backend), precision_policy_name(o.precision),
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
  // The lowest failing rank speaks for the job and names itself and its host (a multi-node job's
  // log interleaves nodes); what the message quotes from the model's files is escaped.
  fmt::print(stderr, "vindex_mpi: error (rank {} of {} on {}): {}\n", ctx.comm.rank(), ctx.comm.size(),
             printable(host_name()), printable(mpi::message_of(error)));
  std::fflush(stderr);
}

// Agrees on `local` across ranks; on failure the lowest failing rank reports and every rank gets
// the exit code. MPI errors and failures inside an exchange are not agreed upon (the communicator
// may be broken, or ranks may be waiting in it): they propagate to main, which aborts the job.
std::optional<int> agree(const RunContext& ctx, const std::exception_ptr& local, bool* input_changed = nullptr) {
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
  if (input_changed) *input_changed = failure->input_changed;
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
                      double elapsed, std::size_t resumed, const std::string& run_id,
                      const std::vector<mpi::HostRanks>& hosts) {
  ojson p;
  p["tool"] = tool_name();
  p["git_commit"] = kGitCommit;
  p["run_id"] = run_id;
  p["command_line"] = ctx.options.command_line;
  p["model_dir"] = absolute_path(ctx.options.model);
  p["model_fingerprint"] = prep.identity.model_fingerprint;
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
  p["host_rank0"] = host_name();
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
  p["resume_verified_all"] = ctx.options.verify_all;
  p["peak_rss_mib_max_rank"] = peak_rss_mib;
  return p;
}

// What rank 0 found in the journal, and which plan items that covers.
struct Resumed {
  std::vector<MatrixResult> results;
  std::vector<std::uint64_t> done_items;  // indices into Prepared::items
  std::size_t files = 0, torn = 0, rejected = 0;
};

// Every result read back is checked against the plan before it is reused (results.hpp,
// result_problem); one that fails, or a record that cannot be decoded, is reported and its
// matrices are recomputed -- never written out.
Resumed read_resume_journal(const Prepared& prep) {
  JournalContents contents = read_journals(prep.out, prep.identity);
  std::map<MatrixKey, std::uint64_t> index_of;
  for (std::size_t i = 0; i < prep.items.size(); ++i) index_of.emplace(prep.items[i].key, i);
  Resumed resumed{{}, {}, contents.files, contents.torn_records, contents.skipped.size()};
  std::vector<std::string> warnings = std::move(contents.skipped);
  std::vector<bool> taken(prep.items.size(), false);
  for (JournalContents::Entry& e : contents.results) {
    const MatrixResult& r = e.result;
    const auto it = index_of.find(r.key);
    const std::string problem = it == index_of.end() ? "a matrix this run does not plan"
                                                     : result_problem(r, prep.items[it->second], prep.identity.ks.size());
    if (!problem.empty()) {
      ++resumed.rejected;
      warnings.push_back(fmt::format("journal {}: layer {} {} expert {}: {}; recomputed", e.file, r.key.layer,
                                     r.key.group(), r.key.expert, problem));
      continue;
    }
    if (taken[it->second]) continue;  // a second copy (two journals of one matrix): the first stands
    taken[it->second] = true;
    resumed.done_items.push_back(it->second);
    resumed.results.push_back(std::move(e.result));
  }
  constexpr std::size_t kMaxWarnings = 20;
  for (std::size_t i = 0; i < std::min(warnings.size(), kMaxWarnings); ++i)
    fmt::print(stderr, "vindex_mpi: warning: {}\n", printable(warnings[i]));
  if (warnings.size() > kMaxWarnings)
    fmt::print(stderr, "vindex_mpi: warning: ... and {} more journal entries refused (recomputed)\n",
               warnings.size() - kMaxWarnings);
  return resumed;
}

std::uint64_t parse_hex64(const std::string& text) { return std::stoull(text, nullptr, 16); }

// --resume --verify-all: every rank re-reads its share of the matrices taken from the journal and
// compares their weight digests with the journal's; rank 0 reports what it cost.
std::optional<int> verify_resumed(const RunContext& ctx, const Prepared& prep, std::span<const std::uint64_t> done_items,
                                  std::span<const std::uint64_t> digests) {
  const auto started = std::chrono::steady_clock::now();
  const auto n = static_cast<std::size_t>(ctx.comm.size());
  const auto r = static_cast<std::size_t>(ctx.comm.rank());
  const std::size_t begin = done_items.size() * r / n, end = done_items.size() * (r + 1) / n;
  if (auto code = run_stage(ctx, [&] {
        std::vector<WorkItem> items;
        for (std::size_t i = begin; i < end; ++i) items.push_back(prep.items.at(done_items[i]));
        verify_weight_digests(prep.checkpoint, prep.layout, items, digests.subspan(begin, end - begin), ctx.threads,
                              "the journal");
      }))
    return code;
  const double seconds = mpi::max_over_ranks(ctx.comm, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (ctx.comm.is_root()) {
    std::uint64_t bytes = 0;
    for (std::uint64_t i : done_items) bytes += prep.items.at(i).bytes;
    fmt::print(stderr, "vindex_mpi: --verify-all: {} matrices from the journal re-read ({:.1f} MiB) and re-hashed in "
                       "{:.2f} s on {} rank(s): every weight digest matches the model\n",
               done_items.size(), static_cast<double>(bytes) / (1 << 20), seconds, n);
  }
  return std::nullopt;
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
  if (o.dry_run) {
    std::vector<double> costs;
    for (const WorkItem& item : prep->items) costs.push_back(item.cost);
    if (comm.is_root())
      fmt::print("{}", format_plan(prep->model_name, prep->items, partition_contiguous(costs, comm.size()), ctx.threads));
    return 0;
  }

  // The model fingerprint (its headers and samples of every tensor: model_fingerprint.hpp) and the
  // run id, from rank 0 to all.
  std::uint64_t fingerprint = 0;
  if (auto code = run_stage(ctx, [&] {
        if (!comm.is_root()) return;
        const ModelFingerprint f = fingerprint_model(prep->checkpoint, ctx.threads);
        fmt::print(stderr, "vindex_mpi: model fingerprint {} ({} tensors sampled, {:.1f} MiB read in {:.2f} s)\n", f.value,
                   f.tensors, static_cast<double>(f.bytes_read) / (1 << 20), f.seconds);
        fingerprint = parse_hex64(f.value);
      }))
    return *code;
  const std::vector<std::uint64_t> shared = mpi::broadcast_from_root(comm, {fingerprint, parse_hex64(new_run_id())});
  prep->identity.model_fingerprint = fmt::format("{:016x}", shared.at(0));
  const std::string run_id = fmt::format("{:016x}", shared.at(1));

  Resumed resumed;
  std::vector<RouterBias> router_biases;  // rank 0, phase 2: read (and checked) before any spectrum
  std::optional<OutputLock> lock;  // rank 0 holds --out for the whole run
  if (auto code = run_stage(ctx, [&] {
        if (!comm.is_root()) return;
        // The router biases are written at the end; a NaN among them must not cost the whole run.
        if (prep->identity.plan_request().routers)
          router_biases = read_router_biases(prep->layout, prep->checkpoint, prep->identity.layers);
        const OutputMode mode = o.resume ? OutputMode::resume : o.overwrite ? OutputMode::overwrite : OutputMode::fresh;
        std::string note;
        lock.emplace(prepare_output_directory(prep->out, mode, {}, &note));
        if (!note.empty()) fmt::print(stderr, "vindex_mpi: note: --out {}: {}\n", printable(prep->out.string()), note);
        if (o.resume) resumed = read_resume_journal(*prep);
      }))
    return *code;

  // Phase 3 (when asked) first: it takes minutes where the spectra may take hours, so a capture found
  // bad (a NaN deep in a layer) ends the job before any spectrum is computed. Each rank computes
  // its share of the layers, rank 0 gathers them; the results go into the same set of files.
  std::optional<Phase3Results> phase3;
  if (prep->capture) {
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
  // Every rank learns which matrices are done (and, for --verify-all, their recorded digests) and
  // plans the rest identically.
  std::vector<bool> done(prep->items.size(), false);
  const std::vector<std::uint64_t> done_items = mpi::broadcast_from_root(comm, resumed.done_items);
  for (std::uint64_t i : done_items) done.at(i) = true;
  if (o.verify_all) {
    std::vector<std::uint64_t> digests;
    for (const MatrixResult& r : resumed.results) digests.push_back(r.weight_digest);
    digests = mpi::broadcast_from_root(comm, std::move(digests));
    if (auto code = verify_resumed(ctx, *prep, done_items, digests)) return *code;
  }
  std::vector<WorkItem> todo;
  std::vector<double> costs;
  for (std::size_t i = 0; i < prep->items.size(); ++i)
    if (!done[i]) {
      todo.push_back(prep->items[i]);
      costs.push_back(prep->items[i].cost);
    }
  const std::vector<std::size_t> bounds = partition_contiguous(costs, comm.size());

  const auto r = static_cast<std::size_t>(comm.rank());
  const std::span<const WorkItem> mine(todo.data() + bounds[r], bounds[r + 1] - bounds[r]);
  std::unique_ptr<SpectrumBackend> backend;
  // After a failure the journal is kept for --resume, unless a fresh run found the model itself
  // bad (exit 3): that model must change before anything is computed from it again. A model file
  // that changed under the run (input_changed) is not such a verdict: what was computed before
  // stands, and --resume (whose fingerprint check sees whether the model is the same again) goes on.
  // Every rank gets here with the same code; all close their journals before rank 0 removes them.
  std::optional<JournalWriter> journal;
  const auto failed = [&](int code, bool input_changed = false) {
    journal.reset();
    mpi::max_over_ranks(comm, 0.0);  // a barrier: every journal file is closed
    if (comm.is_root() && !o.resume && !input_changed && code == static_cast<int>(ExitCode::bad_input)) {
      std::error_code ec;
      std::filesystem::remove_all(prep->out / kJournalDirectory, ec);
    }
    return code;
  };
  if (auto code = run_stage(ctx, [&] {
        backend = make_backend(ctx, prep->backend);
        journal.emplace(prep->out, fmt::format("run-{}-rank-{:05d}.vjl", run_id, comm.rank()), prep->identity,
                        o.journal_seconds);
      }))
    return failed(*code);
  RankComputation work(*backend, prep->checkpoint, prep->layout, mine, o.ks, &*journal);

  if (comm.is_root() && !prep->items.empty() && prep->backend == BackendKind::cpu)
    if (const std::string message = blas_kernel_message(); !message.empty())
      fmt::print(stderr, "vindex_mpi: {}\n", message);
  std::optional<ProgressPrinter> progress;
  if (comm.is_root() && !prep->items.empty()) {
    fmt::print(stderr, "vindex_mpi {}: {} -- {} matrices on {} rank(s) x {} thread(s), backend {}, run {}\n", kVersion,
               prep->model_name, todo.size(), comm.size(), ctx.threads, backend->name(), run_id);
    if (o.resume)
      fmt::print(stderr, "vindex_mpi: resuming: {} of {} matrices already done ({} journal file(s){}{}); {} to compute\n",
                 resumed.results.size(), prep->items.size(), resumed.files,
                 resumed.torn ? fmt::format(", {} incomplete final record(s) ignored", resumed.torn) : "",
                 resumed.rejected ? fmt::format(", {} refused entries recomputed", resumed.rejected) : "", todo.size());
    // Under mpirun only rank 0's stdout may be a terminal (Open MPI gives stderr a pipe): update in
    // place on whichever stream is one, else write plain lines to stderr (logs).
    std::FILE* stream = isatty(fileno(stderr)) ? stderr : isatty(fileno(stdout)) ? stdout : stderr;
    const PlanRequest request = prep->identity.plan_request();
    const char* label = request.phase1 && request.routers ? "phases 1+2" : request.routers ? "phase 2" : "phase 1";
    progress.emplace(label, todo.size(), stream, isatty(fileno(stream)) != 0, o.progress_seconds);
  }
  work.start();
  const std::size_t global_done = mpi::exchange_progress_until_done(comm, work, [&](std::size_t n) {
    if (progress) progress->update(n);
  });
  work.join();
  if (progress) progress->finish(global_done);
  bool input_changed = false;
  if (auto code = agree(ctx, work.failed() ? work.error() : nullptr, &input_changed)) return failed(*code, input_changed);

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
               provenance_json(ctx, *prep, *backend, peak_rss, elapsed, resumed.done_items.size(), run_id, hosts);
           const std::string from_journal =
               o.resume ? fmt::format(" ({} computed, {} from the journal)", computed, resumed.done_items.size()) : "";
           const std::string headline = fmt::format("{} -- {}, {} matrices{}, {} rank(s), {:.1f} s", prep->model_name,
                                                    describe_request(request, tables.phase3.has_value()),
                                                    prep->items.size(), from_journal, comm.size(), elapsed);
           write_spectra_outputs(prep->out, run_id, tables, prep->model_name, prep->layout, provenance, headline);
           // The outputs are committed: the journal has served its purpose.
           std::error_code ec;
           std::filesystem::remove_all(prep->out / kJournalDirectory, ec);
         });
  return code ? failed(*code) : 0;
}

}  // namespace vindex::app
