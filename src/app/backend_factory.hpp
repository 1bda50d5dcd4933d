// The spectrum backend of a run: --backend resolved against this build and machine, and for CUDA
// the GPU this rank drives (its rank on the node) and its host helper threads.
#pragma once

#include <memory>

#include "run_context.hpp"
#include "vindex/run/backend.hpp"
#include "vindex/run/device_assignment.hpp"

namespace vindex::app {

// Every rank reaches the same verdict (device counts are per node, and nodes are alike); a
// request that cannot be met is a UsageError.
BackendKind choose_backend(const Options& options);

std::unique_ptr<SpectrumBackend> make_backend(const RunContext& ctx, BackendKind kind);

}  // namespace vindex::app
