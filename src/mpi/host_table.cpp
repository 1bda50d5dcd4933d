// Gathering every rank's host name and node-local rank to rank 0.
#include "host_table.hpp"

#include <unistd.h>

#include <array>
#include <cstring>

namespace vindex::mpi {
namespace {

// Fixed-size record: one MPI_Gather of bytes, no second round for lengths.
struct RankHost {
  std::array<char, 256> name{};  // HOST_NAME_MAX is 64 on Linux; NUL-terminated
  int node_rank = 0;
};

}  // namespace

std::vector<HostRanks> gather_host_table(const Communicator& comm) {
  RankHost mine;
  gethostname(mine.name.data(), mine.name.size() - 1);
  mine.name.back() = '\0';
  mine.node_rank = comm.node_rank();
  std::vector<RankHost> all(comm.is_root() ? static_cast<std::size_t>(comm.size()) : 0);
  VINDEX_MPI_CHECK(MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, comm.get()));
  std::vector<HostRanks> hosts;
  for (std::size_t rank = 0; rank < all.size(); ++rank) {
    const std::string name(all[rank].name.data(), strnlen(all[rank].name.data(), all[rank].name.size()));
    auto it = hosts.begin();
    while (it != hosts.end() && it->name != name) ++it;
    if (it == hosts.end()) it = hosts.insert(hosts.end(), HostRanks{name, {}, {}});
    it->ranks.push_back(static_cast<int>(rank));
    it->node_ranks.push_back(all[rank].node_rank);
  }
  return hosts;
}

}  // namespace vindex::mpi
