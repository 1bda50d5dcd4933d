// Phase 3 for one layer on the CPU (docs/phase3.md): streams the layer's captured MLP inputs in
// token batches, recomputes the routing (x W_r^T in float64 BLAS), tallies loads and
// co-activation, compares with the engine's choices, and on the sampled tokens computes the
// chosen experts' SwiGLU activations (C1, C3) and the centred token Gram matrix (C5).
#pragma once

#include "vindex/run/backend.hpp"

namespace vindex::cpu {

LayerPhase3 compute_layer_phase3(const Phase3Inputs& in, int layer);

}  // namespace vindex::cpu
