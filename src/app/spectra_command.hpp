// Phases 1 and 2 end to end on every rank: read and plan, compute this rank's share, gather, and (rank 0)
// reduce and write the outputs. Returns the process exit code, agreed by all ranks.
#pragma once

#include "run_context.hpp"

namespace vindex::app {

int run_spectra(const RunContext& ctx);

}  // namespace vindex::app
