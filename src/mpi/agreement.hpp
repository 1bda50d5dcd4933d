// Failure agreement: at fixed points every rank says whether it failed, so no rank is left waiting
// in a collective for one that gave up. The lowest failing rank speaks for the job; every rank
// exits with its exit code.
#pragma once

#include <exception>
#include <optional>

#include "communicator.hpp"

namespace vindex::mpi {

struct JobFailure {
  int rank = 0;  // the lowest rank that failed: it prints the message
  ExitCode code = ExitCode::internal;
  bool input_changed = false;  // that failure was an InputChangedError (a model file changed mid-run)
};

// Collective. `local` is this rank's error, or null.
std::optional<JobFailure> agree_on_failure(const Communicator& comm, const std::exception_ptr& local);

// The exit code and message of an error from any layer.
ExitCode exit_code_of(const std::exception_ptr& error);
std::string message_of(const std::exception_ptr& error);

}  // namespace vindex::mpi
