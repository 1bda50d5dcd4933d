// vindex_mpi: entry point. Parses the command line, starts MPI and runs the requested phases;
// rank 0 speaks for the job, and every rank exits with the same code.
#include <cstdio>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "../cpu/blas_kernels.hpp"
#include "../mpi/agreement.hpp"
#include "../mpi/communicator.hpp"
#include "cka_command.hpp"
#include "inspect_command.hpp"
#include "merge_command.hpp"
#include "options.hpp"
#include "printable.hpp"
#include "run_context.hpp"
#include "spectra_job.hpp"

namespace {

// A rank pinned to fewer cores than the node could give it (Open MPI binds each rank to one core
// when it starts two or fewer): say how to give it more, once. `requested` is --threads (0: the
// default, which follows the binding).
void warn_if_narrowly_bound(const vindex::mpi::Communicator& comm, int requested, int threads) {
  if (!comm.is_root()) return;
  const int usable = vindex::app::usable_cores();
  if (requested > usable) {
    fmt::print(stderr,
               "vindex_mpi: warning: --threads {} but each rank may run on only {} core(s) (the launcher's binding): "
               "its threads will share them; run mpirun with --bind-to none, or srun with --cpus-per-task {}\n",
               requested, usable, requested);
    return;
  }
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  if (requested == 0 && comm.ranks_sharing_cpus() == 1 && threads * comm.node_size() < hardware)
    fmt::print(stderr,
               "vindex_mpi: note: each rank may use only {} of this node's {} cores (the launcher's binding); "
               "for more threads per rank run mpirun with --bind-to none, or srun with --cpus-per-task\n",
               threads, hardware);
}

// Only failures that cannot be agreed upon get here (MPI errors, or a failure inside an exchange):
// end every rank rather than leave any waiting.
[[noreturn]] void fail_collectively(const vindex::mpi::Communicator& comm, const std::exception_ptr& error) {
  using namespace vindex;
  fmt::print(stderr, "vindex_mpi: fatal (rank {} of {} on {}): {}\n", comm.rank(), comm.size(), app::printable(app::host_name()),
             app::printable(mpi::message_of(error)));
  std::fflush(stderr);
  comm.abort(static_cast<int>(mpi::exit_code_of(error)));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vindex;
  // `inspect` reads headers only and `merge` joins finished slices: neither needs MPI.
  if (argc > 1 && std::string_view(argv[1]) == "inspect") return app::run_inspect(argc - 1, argv + 1);
  if (argc > 1 && std::string_view(argv[1]) == "merge") return app::run_merge(argc - 1, argv + 1);
  // Before MPI starts, while a restart is still invisible to the launcher (same pid, no connections).
  restart_with_fitting_blas_kernels(argv);

  std::optional<mpi::Environment> environment;
  std::optional<mpi::Communicator> world;
  try {
    environment.emplace(argc, argv);
    world.emplace(mpi::Communicator::world());
  } catch (const std::exception& e) {
    fmt::print(stderr, "vindex_mpi: error: cannot start MPI: {}\n", e.what());
    if (environment) MPI_Abort(MPI_COMM_WORLD, static_cast<int>(ExitCode::internal));
    return static_cast<int>(ExitCode::internal);
  }
  const mpi::Communicator& comm = *world;
  // `cka` is a job of its own (cross-model CKA of two pooled captures).
  if (argc > 1 && std::string_view(argv[1]) == "cka") {
    try {
      return app::run_cka(comm, argc - 1, argv + 1);
    } catch (...) {
      fail_collectively(comm, std::current_exception());
    }
  }

  // Every rank parses the same arguments and reaches the same verdict; rank 0 prints it.
  app::ParseResult parsed;
  try {
    parsed = app::parse_command_line(argc, argv);
  } catch (const UsageError& e) {
    if (comm.is_root()) fmt::print(stderr, "vindex_mpi: error: {} (see --help)\n", app::printable(e.what()));
    return static_cast<int>(ExitCode::usage);
  }
  if (!parsed.options) {
    if (comm.is_root()) fmt::print("{}\n", parsed.help_text);
    return 0;
  }

  try {
    const int threads = parsed.options->threads > 0 ? parsed.options->threads : app::default_threads(comm.ranks_sharing_cpus());
    warn_if_narrowly_bound(comm, parsed.options->threads, threads);
    const app::RunContext ctx{*parsed.options, comm, threads, std::chrono::steady_clock::now(), app::utc_now_iso8601()};
    return app::SpectraJob(ctx).run();
  } catch (...) {
    fail_collectively(comm, std::current_exception());
  }
}
