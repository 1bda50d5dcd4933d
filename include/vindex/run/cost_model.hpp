// Estimated seconds per matrix, from measured rates: the CPU backend's on one core of the
// development machine (README, "Performance"), and on one H100 the seed's method and the parts of
// a Gram + cuSOLVER path (docs/gpu-baselines.md). Used to balance ranks and by
// `inspect`; estimates, not measurements of the matrix at hand.
#pragma once

#include <cstdint>

namespace vindex {

// One core of the development machine, default precision: dequantization, float32 Gram product,
// float64 eigenvalues.
double estimate_matrix_seconds(std::uint64_t rows, std::uint64_t cols);

// One H100, the seed builder's torch.linalg.svdvals in float32 (201.6 ms for 7168 x 2048),
// scaled by m * n^2.
double estimate_gpu_seed_seconds(std::uint64_t rows, std::uint64_t cols);

// One H100, float32 cuBLAS Gram (1.18 ms for 7168 x 2048, scaled by m * n^2) plus batched cuSOLVER
// eigenvalues (18.1 ms for n = 2048, scaled by n^3): the measured parts of the planned CUDA backend.
double estimate_gpu_gram_eigen_seconds(std::uint64_t rows, std::uint64_t cols);

}  // namespace vindex
