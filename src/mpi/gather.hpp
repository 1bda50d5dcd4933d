#pragma once
// Gathering every rank's results to rank 0 over MPI (point-to-point in bounded chunks, so no
// count overflows an int whatever the model size).
#include <vector>

#include "communicator.hpp"
#include "vindex/run/results.hpp"

namespace vindex::mpi {

// Collective. Returns every rank's bytes on rank 0 (index = rank) and nothing elsewhere.
std::vector<std::vector<std::byte>> gather_bytes(const Communicator& comm, const std::vector<std::byte>& local);

// Collective. Returns all ranks' results on rank 0 (in rank order) and nothing elsewhere.
std::vector<MatrixResult> gather_results(const Communicator& comm, const std::vector<std::byte>& local_encoded);

// Collective: the largest of `value` over all ranks, on every rank.
double max_over_ranks(const Communicator& comm, double value);

}  // namespace vindex::mpi
