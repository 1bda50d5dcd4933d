// A stage that may fail on some ranks only, followed by an agreement on failure
// (mpi/agreement.hpp): on failure the lowest failing rank reports and every rank gets the exit code.
#pragma once

#include <exception>
#include <functional>
#include <optional>

#include "../mpi/communicator.hpp"

namespace vindex::app {

// Agrees on `local` across ranks. MPI errors and failures inside an exchange are not agreed upon
// (the communicator may be broken, or ranks may be waiting in it): they propagate to main, which
// aborts the job. `input_changed` receives whether the failing rank saw a model file change.
std::optional<int> agree(const mpi::Communicator& comm, const std::exception_ptr& local, bool* input_changed = nullptr);

// Runs `stage` on every rank and agrees on its outcome: nullopt when every rank succeeded, else the
// exit code.
std::optional<int> run_stage(const mpi::Communicator& comm, const std::function<void()>& stage);

}  // namespace vindex::app
