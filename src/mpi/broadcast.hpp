// Rank 0 tells every rank what only it has read: the matrices a resumed run finds in its journal
// and the run's id.
#pragma once

#include <cstdint>
#include <vector>

#include "communicator.hpp"

namespace vindex::mpi {

// Collective: every rank returns rank 0's `values`.
std::vector<std::uint64_t> broadcast_from_root(const Communicator& comm, std::vector<std::uint64_t> values);

}  // namespace vindex::mpi
