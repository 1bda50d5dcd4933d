// The stages of a run (see spectra_job.hpp).
#include "spectra_job.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "../cpu/blas_kernels.hpp"
#include "../mpi/broadcast.hpp"
#include "../mpi/gather.hpp"
#include "../mpi/host_table.hpp"
#include "../mpi/progress_exchange.hpp"
#include "backend_factory.hpp"
#include "model_name.hpp"
#include "phase3_stage.hpp"
#include "plan_report.hpp"
#include "printable.hpp"
#include "provenance.hpp"
#include "slices.hpp"
#include "spectra_outputs.hpp"
#include "stage_agreement.hpp"
#include "vindex/format/model_fingerprint.hpp"
#include "vindex/output/aggregate.hpp"
#include "vindex/run/progress.hpp"
#include "vindex/version.hpp"

namespace vindex::app {
namespace {

std::uint64_t parse_hex64(const std::string& text) { return std::stoull(text, nullptr, 16); }

std::vector<double> costs_of(const std::vector<WorkItem>& items) {
  std::vector<double> costs;
  for (const WorkItem& item : items) costs.push_back(item.cost);
  return costs;
}

}  // namespace

int SpectraJob::run() {
  if (auto code = plan()) return *code;
  if (ctx_.options.dry_run) return print_plan();
  if (auto code = identify()) return *code;
  if (auto code = open_outputs()) return *code;
  if (auto code = phase3()) return *code;
  if (auto code = share_resumed()) return *code;
  if (auto code = start_backend()) return failed(*code);
  if (auto code = compute()) return *code;
  if (auto code = gather_and_write()) return failed(*code);
  return 0;
}

// The model, its layout, the layers and the matrices of this run (or slice), the capture phase 3
// reads (refused now if it does not fit the model, before any spectrum is computed), and one
// backend for the job.
std::optional<int> SpectraJob::plan() {
  const Options& o = ctx_.options;
  if (auto code = run_stage(ctx_.comm, [&] {
        checkpoint_.emplace(Checkpoint::open(o.model));
        layout_ = detect_layout(*checkpoint_);
        selected_layers_ = request_.selected_layers(layout_.num_layers);
        layers_ = selected_layers_;
        if (request_.has_phase(3)) capture_ = CaptureFile::open(o.activations, layout_);
        backend_kind_ = choose_backend(o);
        const PlanRequest plan = request_.plan();
        items_ = plan_items(layout_, *checkpoint_, layers_, plan);
        out_ = o.out;
        if (request_.slice) {
          const auto [index, count] = *request_.slice;
          if (static_cast<std::size_t>(count) > selected_layers_.size())
            throw UsageError(fmt::format("--slice {}/{}: there are only {} layers to slice; use at most that many slices",
                                         index, count, selected_layers_.size()));
          layers_ = slice_layers(items_, selected_layers_, index, count);
          items_ = plan_items(layout_, *checkpoint_, layers_, plan);
          if (!o.out.empty()) {
            std::error_code ec;
            if (std::filesystem::is_symlink(std::filesystem::symlink_status(slices_root(o.out), ec)))
              throw UsageError(fmt::format("--out {}: slices/ is a symbolic link; the slices must lie inside --out",
                                           o.out.string()));
            out_ = slice_directory(o.out, index, count);
          }
        }
        model_name_ = model_name_of(o.name, *checkpoint_);
      }))
    return code;
  // --backend auto on nodes that differ (some with GPUs, some without): one backend for the job.
  if (request_.backend == BackendChoice::automatic) {
    const bool cuda_everywhere = -mpi::max_over_ranks(ctx_.comm, backend_kind_ == BackendKind::cuda ? -1.0 : 0.0) > 0.5;
    if (!cuda_everywhere) backend_kind_ = BackendKind::cpu;
  }
  return std::nullopt;
}

int SpectraJob::print_plan() const {
  if (ctx_.comm.is_root())
    fmt::print("{}", format_plan(model_name_, items_, partition_contiguous(costs_of(items_), ctx_.comm.size()), ctx_.threads));
  return 0;
}

// The model fingerprint (its headers and samples of every tensor: model_fingerprint.hpp) and the
// run id, from rank 0 to all.
std::optional<int> SpectraJob::identify() {
  std::uint64_t fingerprint = 0;
  if (auto code = run_stage(ctx_.comm, [&] {
        if (!ctx_.comm.is_root()) return;
        const ModelFingerprint f = fingerprint_model(*checkpoint_, ctx_.threads);
        fmt::print(stderr, "vindex_mpi: model fingerprint {} ({} tensors sampled, {:.1f} MiB read in {:.2f} s)\n", f.value,
                   f.tensors, static_cast<double>(f.bytes_read) / (1 << 20), f.seconds);
        fingerprint = parse_hex64(f.value);
      }))
    return code;
  const std::vector<std::uint64_t> shared = mpi::broadcast_from_root(ctx_.comm, {fingerprint, parse_hex64(new_run_id())});
  identity_ = RunIdentity::of(request_, backend_kind_, layers_, fmt::format("{:016x}", shared.at(0)));
  run_id_ = fmt::format("{:016x}", shared.at(1));
  return std::nullopt;
}

// Rank 0 takes --out (held for the whole run), reads the router biases phase 2 writes at the end
// (a NaN among them must not cost the whole run) and, with --resume, the journal.
std::optional<int> SpectraJob::open_outputs() {
  const Options& o = ctx_.options;
  return run_stage(ctx_.comm, [&] {
    if (!ctx_.comm.is_root()) return;
    if (request_.plan().routers) router_biases_ = read_router_biases(layout_, *checkpoint_, layers_);
    const OutputMode mode = o.resume ? OutputMode::resume : o.overwrite ? OutputMode::overwrite : OutputMode::fresh;
    std::string note;
    lock_.emplace(prepare_output_directory(out_, mode, {}, &note));
    if (!note.empty()) fmt::print(stderr, "vindex_mpi: note: --out {}: {}\n", printable(out_.string()), note);
    if (o.resume) resumed_ = read_resume_journal(out_, identity_, items_);
  });
}

// The backend (made earlier when phase 3 ran on it) and this rank's journal, in one stage.
std::optional<int> SpectraJob::start_backend() {
  return run_stage(ctx_.comm, [&] {
    if (!backend_) backend_ = make_backend(ctx_, backend_kind_);
    journal_.emplace(out_, fmt::format("run-{}-rank-{:05d}.vjl", run_id_, ctx_.comm.rank()), identity_,
                     ctx_.options.journal_seconds);
  });
}

// Phase 3 (when asked) before the spectra: it takes minutes where the spectra may take hours, so a
// capture found bad (a NaN deep in a layer) ends the job before any spectrum is computed. Each
// rank computes its share of the layers on its backend (made here, so a backend that cannot be
// made is reported before phase 3), rank 0 gathers them; the results go into the same files.
std::optional<int> SpectraJob::phase3() {
  if (!capture_) return std::nullopt;
  std::vector<std::byte> share;
  if (auto code = run_stage(ctx_.comm, [&] {
        backend_ = make_backend(ctx_, backend_kind_);
        share = compute_phase3_share(ctx_.comm, *backend_, *checkpoint_, layout_, layers_, *capture_,
                                     request_.phase3_tokens);
      }))
    return code;
  return run_stage(ctx_.comm, [&] {
    phase3_ = gather_phase3(ctx_.comm, share, layout_, *capture_, request_.phase3_tokens);
  });
}

// Every rank learns which matrices the journal covers (and, with --verify-all, re-reads its share
// of them and compares their weight digests with the journal's), then plans the rest identically.
std::optional<int> SpectraJob::share_resumed() {
  const mpi::Communicator& comm = ctx_.comm;
  done_items_ = mpi::broadcast_from_root(comm, resumed_.done_items);
  if (ctx_.options.verify_all) {
    std::vector<std::uint64_t> digests;
    for (const MatrixResult& r : resumed_.results) digests.push_back(r.weight_digest);
    digests = mpi::broadcast_from_root(comm, std::move(digests));
    const auto started = std::chrono::steady_clock::now();
    const auto n = static_cast<std::size_t>(comm.size());
    const auto r = static_cast<std::size_t>(comm.rank());
    const std::size_t begin = done_items_.size() * r / n, end = done_items_.size() * (r + 1) / n;
    if (auto code = run_stage(ctx_.comm, [&] {
          std::vector<WorkItem> items;
          for (std::size_t i = begin; i < end; ++i) items.push_back(items_.at(done_items_[i]));
          verify_weight_digests(*checkpoint_, layout_, items, std::span(digests).subspan(begin, end - begin),
                                ctx_.threads, "the journal");
        }))
      return code;
    const double seconds =
        mpi::max_over_ranks(comm, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (comm.is_root()) {
      std::uint64_t bytes = 0;
      for (std::uint64_t i : done_items_) bytes += items_.at(i).bytes;
      fmt::print(stderr, "vindex_mpi: --verify-all: {} matrices from the journal re-read ({:.1f} MiB) and re-hashed in "
                         "{:.2f} s on {} rank(s): every weight digest matches the model\n",
                 done_items_.size(), static_cast<double>(bytes) / (1 << 20), seconds, n);
    }
  }
  std::vector<bool> done(items_.size(), false);
  for (std::uint64_t i : done_items_) done.at(i) = true;
  for (std::size_t i = 0; i < items_.size(); ++i)
    if (!done[i]) todo_.push_back(items_[i]);
  return std::nullopt;
}

// This rank's contiguous share of what is left, journaled as it goes; progress from rank 0.
std::optional<int> SpectraJob::compute() {
  const mpi::Communicator& comm = ctx_.comm;
  const Options& o = ctx_.options;
  const std::vector<std::size_t> bounds = partition_contiguous(costs_of(todo_), comm.size());
  const auto r = static_cast<std::size_t>(comm.rank());
  const std::span<const WorkItem> mine(todo_.data() + bounds[r], bounds[r + 1] - bounds[r]);
  RankComputation work(*backend_, *checkpoint_, layout_, mine, request_.ks, &*journal_);

  if (comm.is_root() && !items_.empty() && backend_kind_ == BackendKind::cpu)
    if (const std::string message = blas_kernel_message(); !message.empty())
      fmt::print(stderr, "vindex_mpi: {}\n", message);
  std::optional<ProgressPrinter> progress;
  if (comm.is_root() && !items_.empty()) {
    fmt::print(stderr, "vindex_mpi {}: {} -- {} matrices on {} rank(s) x {} thread(s), backend {}, run {}\n", kVersion,
               model_name_, todo_.size(), comm.size(), ctx_.threads, backend_->name(), run_id_);
    if (o.resume)
      fmt::print(stderr, "vindex_mpi: resuming: {} of {} matrices already done ({} journal file(s){}{}); {} to compute\n",
                 resumed_.results.size(), items_.size(), resumed_.files,
                 resumed_.torn ? fmt::format(", {} incomplete final record(s) ignored", resumed_.torn) : "",
                 resumed_.rejected ? fmt::format(", {} refused entries recomputed", resumed_.rejected) : "",
                 todo_.size());
    // Under mpirun only rank 0's stdout may be a terminal (Open MPI gives stderr a pipe): update in
    // place on whichever stream is one, else write plain lines to stderr (logs).
    std::FILE* stream = isatty(fileno(stderr)) ? stderr : isatty(fileno(stdout)) ? stdout : stderr;
    const PlanRequest plan = request_.plan();
    const char* label = plan.phase1 && plan.routers ? "phases 1+2" : plan.routers ? "phase 2" : "phase 1";
    progress.emplace(label, todo_.size(), stream, isatty(fileno(stream)) != 0, o.progress_seconds);
  }
  work.start();
  const std::size_t global_done = mpi::exchange_progress_until_done(comm, work, [&](std::size_t n) {
    if (progress) progress->update(n);
  });
  work.join();
  if (progress) progress->finish(global_done);
  bool input_changed = false;
  if (auto code = agree(ctx_.comm, work.failed() ? work.error() : nullptr, &input_changed)) return failed(*code, input_changed);
  if (auto code = run_stage(ctx_.comm, [&] {
        journal_->flush();
        journal_.reset();
        results_ = work.take_results();
      }))
    return failed(*code);
  return std::nullopt;
}

// Rank 0 gathers every rank's results, adds those from the journal, reduces them into the tables
// and writes the output set; the journal, having served its purpose, is then removed.
std::optional<int> SpectraJob::gather_and_write() {
  const mpi::Communicator& comm = ctx_.comm;
  std::vector<std::byte> encoded;
  if (auto code = run_stage(ctx_.comm, [&] { encode_results(std::exchange(results_, {}), encoded); })) return code;
  const double peak_rss = mpi::max_over_ranks(comm, peak_rss_mib());
  std::vector<mpi::HostRanks> hosts = mpi::gather_host_table(comm);
  return run_stage(ctx_.comm, [&] {
    std::vector<MatrixResult> all = mpi::gather_results(comm, encoded);
    encoded = {};
    if (!comm.is_root()) return;
    const std::size_t computed = all.size();
    for (MatrixResult& m : resumed_.results) all.push_back(std::move(m));
    const PlanRequest plan = request_.plan();
    VindexTables tables = assemble_tables(std::move(all), items_, layout_, request_.ks, plan);
    tables.router_biases = std::move(router_biases_);
    tables.phase3 = std::move(phase3_);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx_.started).count();
    const RunFacts facts{selected_layers_,   backend_->name(), backend_->description(),       std::move(hosts),
                         elapsed,            resumed_.done_items.size(),                      peak_rss};
    const nlohmann::ordered_json provenance = run_provenance({run_id_, ctx_.options.command_line, ctx_.options.model, identity_}, ctx_, facts);
    const std::string from_journal =
        ctx_.options.resume ? fmt::format(" ({} computed, {} from the journal)", computed, resumed_.done_items.size()) : "";
    const std::string headline = fmt::format("{} -- {}, {} matrices{}, {} rank(s), {:.1f} s", model_name_,
                                             describe_request(plan, tables.phase3.has_value()), items_.size(),
                                             from_journal, comm.size(), elapsed);
    write_spectra_outputs(out_, run_id_, tables, model_name_, layout_, provenance, headline);
    std::error_code ec;
    std::filesystem::remove_all(out_ / kJournalDirectory, ec);
  });
}

// After a failure the journal is kept for --resume, unless a fresh run found the model itself bad
// (exit 3): that model must change before anything is computed from it again. A model file that
// changed under the run (input_changed) is not such a verdict: what was computed before stands,
// and --resume (whose fingerprint check sees whether the model is the same again) goes on. Every
// rank gets here with the same code; all close their journals before rank 0 removes them.
int SpectraJob::failed(int code, bool input_changed) {
  journal_.reset();
  mpi::max_over_ranks(ctx_.comm, 0.0);  // a barrier: every journal file is closed
  if (ctx_.comm.is_root() && !ctx_.options.resume && !input_changed && code == static_cast<int>(ExitCode::bad_input)) {
    std::error_code ec;
    std::filesystem::remove_all(out_ / kJournalDirectory, ec);
  }
  return code;
}

}  // namespace vindex::app
