// Failure agreement after a stage (see stage_agreement.hpp).
#include "stage_agreement.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "../mpi/agreement.hpp"
#include "printable.hpp"
#include "run_context.hpp"
#include "vindex/base/errors.hpp"

namespace vindex::app {
namespace {

void report_failure(const mpi::Communicator& comm, const std::exception_ptr& error) {
  // The lowest failing rank speaks for the job and names itself and its host (a multi-node job's
  // log interleaves nodes); what the message quotes from the model's files is escaped.
  fmt::print(stderr, "vindex_mpi: error (rank {} of {} on {}): {}\n", comm.rank(), comm.size(),
             printable(host_name()), printable(mpi::message_of(error)));
  std::fflush(stderr);
}

}  // namespace

std::optional<int> agree(const mpi::Communicator& comm, const std::exception_ptr& local, bool* input_changed) {
  if (local) {
    try {
      std::rethrow_exception(local);
    } catch (const MpiError&) {
      throw;
    } catch (const CollectiveError&) {
      throw;
    } catch (...) {
    }
  }
  const auto failure = mpi::agree_on_failure(comm, local);
  if (!failure) return std::nullopt;
  if (failure->rank == comm.rank()) report_failure(comm, local);
  if (input_changed) *input_changed = failure->input_changed;
  return static_cast<int>(failure->code);
}

std::optional<int> run_stage(const mpi::Communicator& comm, const std::function<void()>& stage) {
  std::exception_ptr error;
  try {
    stage();
  } catch (...) {
    error = std::current_exception();
  }
  return agree(comm, error);
}

}  // namespace vindex::app
