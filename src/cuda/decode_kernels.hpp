// Dequantization on the device, with exactly the CPU decoder's arithmetic (vindex/model/dequantize.hpp):
// an fp8 code looks up the same float32 table the CPU uses and is multiplied by its block scale in
// float32; BF16/F16/F32 widen exactly. The result, widened to T, is written as the column-major
// matrix W^T (leading dimension cols), and each thread block's float64 sum of squares goes to
// `partial_sums`, which sum_partials adds up in a fixed order (deterministic). The launchers
// return the CUDA status for the (C++20) host code to check: this file is compiled as C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vindex::cuda {

enum class StoredType : int { f8_e4m3 = 0, bf16 = 1, f16 = 2, f32 = 3 };

// Uploads the 256-entry e4m3fn table (fp8_e4m3_to_float of every code) to constant memory.
cudaError_t upload_fp8_table(const float* table256);

// Blocks the decode launch uses for a matrix of `elements` entries (size of `partial_sums`).
unsigned decode_blocks(std::uint64_t elements);

template <typename T>
cudaError_t launch_decode(const void* stored, StoredType type, const float* scales, std::uint64_t rows, std::uint64_t cols,
                   std::uint32_t block_rows, std::uint32_t block_cols, std::uint64_t scale_cols, StoredType product,
                   T* out, double* partial_sums, cudaStream_t stream);

// Sets the matrix to zeros when *total (its sum of squares) is not finite.
template <typename T>
cudaError_t launch_zero_if_non_finite(T* matrix, std::uint64_t elements, const double* total, cudaStream_t stream);

// partial_sums[0..count) -> *total, in a fixed order.
cudaError_t launch_sum_partials(const double* partial_sums, unsigned count, double* total, cudaStream_t stream);

}  // namespace vindex::cuda
