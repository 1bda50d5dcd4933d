// Rounds of MPI_Iallreduce polled with MPI_Testall, so that a waiting rank sleeps rather than
// spinning on a core the computing threads need.
#include "progress_exchange.hpp"

#include <array>
#include <thread>

namespace vindex::mpi {
namespace {

void wait_polling(std::array<MPI_Request, 2>& requests, std::chrono::milliseconds poll) {
  for (;;) {
    int complete = 0;
    VINDEX_MPI_CHECK(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &complete, MPI_STATUSES_IGNORE));
    if (complete) return;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace

std::size_t exchange_progress_until_done(const Communicator& comm, RankComputation& work,
                                             const std::function<void(std::size_t)>& on_progress,
                                             std::chrono::milliseconds poll) {
  for (;;) {
    // Read `finished` before `done`: once finished is seen, done is final.
    const bool finished = work.finished();
    const bool failed = work.failed();
    std::array<long long, 2> local{static_cast<long long>(work.done()), finished ? 1 : 0};
    std::array<long long, 2> global{};
    int local_failed = failed ? comm.rank() : comm.size();
    int lowest_failed = comm.size();
    std::array<MPI_Request, 2> requests{MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    VINDEX_MPI_CHECK(MPI_Iallreduce(local.data(), global.data(), 2, MPI_LONG_LONG, MPI_SUM, comm.get(), &requests[0]));
    VINDEX_MPI_CHECK(MPI_Iallreduce(&local_failed, &lowest_failed, 1, MPI_INT, MPI_MIN, comm.get(), &requests[1]));
    wait_polling(requests, poll);

    const auto done = static_cast<std::size_t>(global[0]);
    if (on_progress) on_progress(done);
    if (lowest_failed < comm.size()) {
      work.request_stop();
      return done;
    }
    if (global[1] == comm.size()) return done;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace vindex::mpi
