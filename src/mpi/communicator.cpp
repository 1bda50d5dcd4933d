// MPI initialisation, the world communicator and its node-local view.
#include "communicator.hpp"

#include <sched.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace vindex::mpi {

Environment::Environment(int& argc, char**& argv) {
  int provided = 0;
  VINDEX_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw MpiError("MPI_Init_thread (MPI_THREAD_FUNNELED not provided)", provided);
  }
  // Errors come back as codes and become MpiErrors with the failing call.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  // A peer that dies (its node lost) must surface as an MPI error on this rank, which Open MPI
  // reports naming the peer's host -- not kill this healthy rank with SIGPIPE when its TCP
  // transport writes to the dead peer's socket, which makes the launcher blame this rank's host.
  std::signal(SIGPIPE, SIG_IGN);
}

Environment::~Environment() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

Communicator Communicator::world() {
  Communicator c;
  c.comm_ = MPI_COMM_WORLD;
  VINDEX_MPI_CHECK(MPI_Comm_rank(c.comm_, &c.rank_));
  VINDEX_MPI_CHECK(MPI_Comm_size(c.comm_, &c.size_));
  MPI_Comm node = MPI_COMM_NULL;
  VINDEX_MPI_CHECK(MPI_Comm_split_type(c.comm_, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL, &node));
  VINDEX_MPI_CHECK(MPI_Comm_rank(node, &c.node_rank_));
  VINDEX_MPI_CHECK(MPI_Comm_size(node, &c.node_size_));
  cpu_set_t mine;
  CPU_ZERO(&mine);
  sched_getaffinity(0, sizeof mine, &mine);
  std::vector<cpu_set_t> all(static_cast<std::size_t>(c.node_size_));
  VINDEX_MPI_CHECK(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, node));
  c.ranks_sharing_cpus_ = 0;
  for (const cpu_set_t& other : all) c.ranks_sharing_cpus_ += CPU_EQUAL(&mine, &other) ? 1 : 0;
  MPI_Comm_free(&node);
  return c;
}

void Communicator::abort(int code) const {
  MPI_Abort(comm_, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string version(text, static_cast<std::size_t>(length));
  version.resize(version.find('\0') == std::string::npos ? version.size() : version.find('\0'));
  if (const auto newline = version.find_first_of("\r\n"); newline != std::string::npos) version.resize(newline);
  while (!version.empty() && (version.back() == ',' || version.back() == ' ')) version.pop_back();
  return version;
}

}  // namespace vindex::mpi
