// Agreeing on failure across ranks with two small collectives.
#include "agreement.hpp"

#include <new>

namespace vindex::mpi {

ExitCode exit_code_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return e.code();
  } catch (...) {
    return ExitCode::internal;
  }
}

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    return "out of memory";
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

namespace {

int input_changed(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const InputChangedError&) {
    return 1;
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::optional<JobFailure> agree_on_failure(const Communicator& comm, const std::exception_ptr& local) {
  int mine = local ? comm.rank() : comm.size();
  int lowest = comm.size();
  VINDEX_MPI_CHECK(MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, comm.get()));
  if (lowest == comm.size()) return std::nullopt;
  int failure[2] = {local ? static_cast<int>(exit_code_of(local)) : 0, local ? input_changed(local) : 0};
  VINDEX_MPI_CHECK(MPI_Bcast(failure, 2, MPI_INT, lowest, comm.get()));
  return JobFailure{lowest, static_cast<ExitCode>(failure[0]), failure[1] != 0};
}

}  // namespace vindex::mpi
