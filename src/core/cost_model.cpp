// Measured rates behind the cost estimates (see cost_model.hpp for their sources).
#include "vindex/cost_model.hpp"

#include <algorithm>

namespace vindex {
namespace {

// One core of the development machine (OpenBLAS 0.3.21, Xeon), default path: ssyrk of 2048^2 x
// 7168 took 0.19 s, dsyevd_2stage of n = 2048 0.37 s, dequantization of 7168 x 2048 fp8 values 0.01 s.
constexpr double kGramSecondsPerFlop = 6.3e-12;     // per n^2 * m
constexpr double kEigenSecondsPerCube = 4.3e-11;    // per n^3
constexpr double kDecodeSecondsPerElement = 7e-10;  // per m * n

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
