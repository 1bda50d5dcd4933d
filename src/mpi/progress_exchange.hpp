// While the backends compute, the main thread of every rank runs rounds of non-blocking
// allreduce: each round sums the matrices done, counts finished ranks and finds the lowest failed
// rank. Rank 0 turns the sums into progress lines; a failure anywhere stops every rank within one
// round; all ranks leave the loop after the same round, so the collectives that follow match.
#pragma once

#include <chrono>
#include <functional>

#include "communicator.hpp"
#include "vindex/run/rank_computation.hpp"

namespace vindex::mpi {

// Returns the matrices done over all ranks in the last round. Whether a rank failed is not returned:
// the caller agrees on the ranks' errors afterwards (agreement.hpp), which also names the failure.
std::size_t exchange_progress_until_done(const Communicator& comm, RankComputation& work,
                                             const std::function<void(std::size_t)>& on_progress,
                                             std::chrono::milliseconds poll = std::chrono::milliseconds(50));

}  // namespace vindex::mpi
