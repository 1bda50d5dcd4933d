// The MPI environment (RAII init/finalize) and the world communicator with the facts the job
// needs: rank, size, ranks on this node. Every MPI call's error code is checked and thrown as an
// MpiError; MPI failures cannot be agreed upon, so the caller aborts the job on them.
#pragma once

#include <mpi.h>

#include <string>

#include "vindex/base/errors.hpp"

#define VINDEX_MPI_CHECK(call)                                         \
  do {                                                                 \
    const int vindex_mpi_rc_ = (call);                                 \
    if (vindex_mpi_rc_ != MPI_SUCCESS) throw ::vindex::MpiError(#call, vindex_mpi_rc_); \
  } while (0)

namespace vindex::mpi {

class Environment {
 public:
  // MPI_THREAD_FUNNELED: backends compute on worker threads; only the main thread calls MPI.
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
};

class Communicator {
 public:
  static Communicator world();

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Ranks sharing this node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED).
  int node_size() const { return node_size_; }
  int node_rank() const { return node_rank_; }
  // Ranks on this node allowed on exactly the CPUs this rank may use (itself included): they
  // share those cores, whether the launcher bound ranks to cores, to sockets or not at all.
  int ranks_sharing_cpus() const { return ranks_sharing_cpus_; }

  // Ends every rank of the job; for failures the ranks cannot agree on (an MPI error).
  [[noreturn]] void abort(int code) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, node_size_ = 1, node_rank_ = 0, ranks_sharing_cpus_ = 1;
};

std::string mpi_library_version();

}  // namespace vindex::mpi
