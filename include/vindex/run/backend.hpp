// The backend interface: a backend turns encoded weight matrices into the eigenvalues of their
// Gram matrices (sigma_i^2), and computes phase 3 for a layer. The CPU backend (src/cpu) uses
// LAPACK; the CUDA backend (src/cuda) implements the same interface.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vindex/format/checkpoint.hpp"
#include "vindex/model/dequantize.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/numerics/accuracy_policy.hpp"
#include "vindex/phase3/capture_file.hpp"
#include "vindex/phase3/routing.hpp"
#include "vindex/phase3/statistics.hpp"

namespace vindex {

struct MatrixSpectrum {
  std::vector<double> eigenvalues;  // sigma_i^2, descending, clamped at 0; min(rows, cols) values
  double frobenius_sq = 0;          // sum of squares of the dequantized entries, in float64
  FloatBits gram_bits = FloatBits::fp32;   // precision of the Gram product
  FloatBits eigen_bits = FloatBits::fp64;  // precision of the eigensolver
  std::uint64_t weight_digest = 0;         // MatrixDecoder::digest() of the bytes read
};

// What phase 3 reads for a layer (docs/phase3.md).
struct Phase3Inputs {
  const Checkpoint& checkpoint;
  const ModelLayout& layout;
  const CaptureFile& capture;
  std::optional<RoutingRule> rule;          // none for a model without MoE layers
  std::span<const std::uint64_t> sampled;  // ascending token indices
};

// Receives results from a backend; called from the backend's threads.
class SpectrumSink {
 public:
  virtual ~SpectrumSink() = default;
  virtual void deliver(std::size_t index, MatrixSpectrum&& spectrum) = 0;
  virtual void fail(std::size_t index, std::exception_ptr error) = 0;
  // Polled between matrices: true once the job is failing elsewhere or was cancelled.
  virtual bool should_stop() const = 0;
};

class SpectrumBackend {
 public:
  virtual ~SpectrumBackend() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;  // settings and libraries, for provenance
  // Computes every matrix's spectrum, delivering each as it completes, in any order. Returns when
  // all are delivered, or early after a failure or once the sink asks to stop.
  virtual void compute(std::span<const EncodedMatrix> matrices, SpectrumSink& sink) = 0;
  // Phase 3 for one layer (docs/phase3.md): its captured MLP inputs routed again, the loads and
  // co-activation tallied, the engine's choices compared, and on the sampled tokens the SwiGLU
  // activations (C1, C3) and the centred token Gram matrix (C5). Errors name the file and tensor.
  virtual LayerPhase3 phase3_layer(const Phase3Inputs& inputs, int layer) = 0;
};

}  // namespace vindex
