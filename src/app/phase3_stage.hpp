// Phase 3 across ranks (docs/phase3.md): the selected layers are split into contiguous runs, one
// per rank; each rank reads its layers' captured MLP inputs and the weights it needs, and rank 0
// gathers the per-layer results and reduces them to the CKA stages and the constants.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "../mpi/communicator.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/phase3/capture_file.hpp"
#include "vindex/phase3/statistics.hpp"
#include "vindex/run/backend.hpp"

namespace vindex::app {

// This rank's share, computed by `backend` and encoded for the gather, from the capture opened
// (and checked against the layout) by the caller. Bad values are InputErrors naming the file and
// the HDF5 object.
std::vector<std::byte> compute_phase3_share(const mpi::Communicator& comm, SpectrumBackend& backend,
                                            const Checkpoint& checkpoint,
                                            const ModelLayout& layout, std::span<const int> layers,
                                            const CaptureFile& capture, int sampled_tokens);

// Collective: gathers every share; on rank 0 returns the results, with the CKA matrix, stages and
// C2 (read from the capture), and warns on stderr about layers whose recomputed routing misses more
// than 0.1% of the engine's choices. Other ranks return nothing.
std::optional<Phase3Results> gather_phase3(const mpi::Communicator& comm, const std::vector<std::byte>& share,
                                           const ModelLayout& layout, const CaptureFile& capture,
                                           int sampled_tokens);

}  // namespace vindex::app
