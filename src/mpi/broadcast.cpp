#include "broadcast.hpp"

#include <algorithm>
#include <limits>

namespace vindex::mpi {

std::vector<std::uint64_t> broadcast_from_root(const Communicator& comm, std::vector<std::uint64_t> values) {
  std::uint64_t count = values.size();
  VINDEX_MPI_CHECK(MPI_Bcast(&count, 1, MPI_UINT64_T, 0, comm.get()));
  values.resize(count);
  // MPI counts are ints: send in chunks.
  constexpr std::uint64_t kChunk = std::numeric_limits<int>::max() / 2;
  for (std::uint64_t at = 0; at < count; at += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, count - at));
    VINDEX_MPI_CHECK(MPI_Bcast(values.data() + at, n, MPI_UINT64_T, 0, comm.get()));
  }
  return values;
}

}  // namespace vindex::mpi
