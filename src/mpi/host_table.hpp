// Which ranks run on which host, for the run's provenance: each host's name with the global ranks
// on it and their node-local ranks (the numbering Communicator::node_rank() derives from
// MPI_COMM_TYPE_SHARED), so a multi-node run's placement can be checked from its outputs.
#pragma once

#include <string>
#include <vector>

#include "communicator.hpp"

namespace vindex::mpi {

struct HostRanks {
  std::string name;             // gethostname() on that host
  std::vector<int> ranks;       // global ranks, ascending
  std::vector<int> node_ranks;  // node-local rank of each, same order
};

// Collective. On rank 0 the hosts in the order of their lowest rank; empty elsewhere.
std::vector<HostRanks> gather_host_table(const Communicator& comm);

}  // namespace vindex::mpi
