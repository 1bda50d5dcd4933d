// Result gather to rank 0.
#include "gather.hpp"

#include <algorithm>
#include <cstdint>
#include <new>

#include <fmt/format.h>

namespace vindex::mpi {
namespace {

constexpr std::uint64_t kChunkBytes = 1ull << 28;
constexpr int kTagResults = 101;

}  // namespace

std::vector<std::vector<std::byte>> gather_bytes(const Communicator& comm, const std::vector<std::byte>& local) {
  std::uint64_t my_size = local.size();
  std::vector<std::uint64_t> sizes(comm.is_root() ? static_cast<std::size_t>(comm.size()) : 0);
  VINDEX_MPI_CHECK(MPI_Gather(&my_size, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, 0, comm.get()));
  if (!comm.is_root()) {
    for (std::uint64_t sent = 0; sent < local.size(); sent += kChunkBytes) {
      const auto count = static_cast<int>(std::min(kChunkBytes, local.size() - sent));
      VINDEX_MPI_CHECK(MPI_Send(local.data() + sent, count, MPI_BYTE, 0, kTagResults, comm.get()));
    }
    return {};
  }
  // Receive everything before decoding anything: a decoding failure must not leave a sender
  // blocked in MPI_Send while rank 0 moves on to the failure agreement.
  std::vector<std::vector<std::byte>> buffers(static_cast<std::size_t>(comm.size()));
  buffers[0] = local;
  for (int source = 1; source < comm.size(); ++source) {
    auto& buffer = buffers[static_cast<std::size_t>(source)];
    try {
      buffer.resize(sizes[static_cast<std::size_t>(source)]);
    } catch (const std::bad_alloc&) {
      throw CollectiveError(fmt::format("rank 0 has no memory for the {} bytes of results of rank {}",
                                        sizes[static_cast<std::size_t>(source)], source));
    }
    for (std::uint64_t got = 0; got < buffer.size(); got += kChunkBytes) {
      const auto count = static_cast<int>(std::min(kChunkBytes, buffer.size() - got));
      VINDEX_MPI_CHECK(MPI_Recv(buffer.data() + got, count, MPI_BYTE, source, kTagResults, comm.get(), MPI_STATUS_IGNORE));
    }
  }
  return buffers;
}

std::vector<MatrixResult> gather_results(const Communicator& comm, const std::vector<std::byte>& local) {
  std::vector<std::vector<std::byte>> buffers = gather_bytes(comm, local);
  std::vector<MatrixResult> all;
  for (auto& buffer : buffers) {
    std::vector<MatrixResult> part = decode_results(buffer);
    buffer = {};
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return all;
}

double max_over_ranks(const Communicator& comm, double value) {
  double result = value;
  VINDEX_MPI_CHECK(MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, comm.get()));
  return result;
}

}  // namespace vindex::mpi
