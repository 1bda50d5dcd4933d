// Measured rates behind the cost estimates (see cost_model.hpp for their sources).
#include "vindex/run/cost_model.hpp"

#include <algorithm>

namespace vindex {
namespace {

// The CPU backend's default path on the development machine (OpenBLAS 0.3.21 with its SkylakeX
// kernels), fitted to a measured full layer: 384 Kimi-K2 experts (7168 x 2048 fp8) on 2 ranks x 1
// thread took 148.6 s (the median of seven runs, 135.9-156.8 s), 0.774 s per matrix per core,
// everything included (tools/bench/README.md, "Calibrating --dry-run", 2026-11-29). That time is
// split between the Gram product (n^2 m), the float64 eigenvalues (n^3) and the decoding (m n) in
// the proportions timed alone on one core (0.19 : 0.37 : 0.01 s): the shape dependence comes from
// those, the absolute level from the layer. The earlier rates (6.3e-12, 4.3e-11, 7e-10: the parts
// timed alone) gave 0.569 s per matrix, 26% below the measured layer's median.
constexpr double kGramSecondsPerFlop = 8.57e-12;     // per n^2 * m
constexpr double kEigenSecondsPerCube = 5.85e-11;    // per n^3
constexpr double kDecodeSecondsPerElement = 9.5e-10; // per m * n

// One H100 (docs/gpu-baselines.md, measured 2026-11-26), for 7168 x 2048.
constexpr double kReferenceLong = 7168, kReferenceShort = 2048;
constexpr double kSeedSeconds = 201.6e-3;      // torch.linalg.svdvals, float32
constexpr double kGpuGramSeconds = 1.18e-3;    // cuBLAS SGEMM, FP32 pedantic
constexpr double kGpuEigenSeconds = 18.1e-3;   // cuSOLVER XsyevBatched fp32, eigenvalues only

struct Sides {
  double n, m;  // short and long side
};
Sides sides(std::uint64_t rows, std::uint64_t cols) {
  return {static_cast<double>(std::min(rows, cols)), static_cast<double>(std::max(rows, cols))};
}

}  // namespace

double estimate_matrix_seconds(std::uint64_t rows, std::uint64_t cols) {
  const auto [n, m] = sides(rows, cols);
  return kGramSecondsPerFlop * n * n * m + kEigenSecondsPerCube * n * n * n + kDecodeSecondsPerElement * n * m;
}

double estimate_gpu_seed_seconds(std::uint64_t rows, std::uint64_t cols) {
  const auto [n, m] = sides(rows, cols);
  return kSeedSeconds * (m * n * n) / (kReferenceLong * kReferenceShort * kReferenceShort);
}

double estimate_gpu_gram_eigen_seconds(std::uint64_t rows, std::uint64_t cols) {
  const auto [n, m] = sides(rows, cols);
  const double gram = kGpuGramSeconds * (m * n * n) / (kReferenceLong * kReferenceShort * kReferenceShort);
  const double eigen = kGpuEigenSeconds * (n * n * n) / (kReferenceShort * kReferenceShort * kReferenceShort);
  return gram + eigen;
}

}  // namespace vindex
