#include "decode_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>


namespace vindex::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kMaxBlocks = 4096;
__constant__ float c_fp8_table[256];

__device__ float load_value(const void* stored, StoredType type, std::uint64_t i) {
  switch (type) {
    case StoredType::f8_e4m3: return c_fp8_table[static_cast<const std::uint8_t*>(stored)[i]];
    case StoredType::bf16: return __uint_as_float(static_cast<unsigned>(static_cast<const std::uint16_t*>(stored)[i]) << 16);
    case StoredType::f16: return __half2float(__ushort_as_half(static_cast<const std::uint16_t*>(stored)[i]));
    case StoredType::f32: return static_cast<const float*>(stored)[i];
  }
  return 0.0f;
}

template <typename T>
__global__ void decode_kernel(const void* stored, StoredType type, const float* scales, std::uint64_t rows,
                              std::uint64_t cols, std::uint32_t block_rows, std::uint32_t block_cols,
                              std::uint64_t scale_cols, StoredType product, T* out, double* partial_sums) {
  __shared__ double sums[kThreads];
  const std::uint64_t n = rows * cols;
  double local = 0.0;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    float v = load_value(stored, type, i);
    if (scales) {
      const std::uint64_t r = i / cols, c = i % cols;
      v = __fmul_rn(v, scales[(r / block_rows) * scale_cols + c / block_cols]);  // one float32 rounding, no FMA
      // The product in the scale's dtype where the publisher's library computes in it (round to nearest even).
      if (product == StoredType::bf16) v = __bfloat162float(__float2bfloat16_rn(v));
      else if (product == StoredType::f16) v = __half2float(__float2half_rn(v));
    }
    out[i] = static_cast<T>(v);  // row-major W is column-major W^T with leading dimension cols
    local += static_cast<double>(v) * static_cast<double>(v);
  }
  sums[threadIdx.x] = local;
  __syncthreads();
  for (unsigned stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) sums[threadIdx.x] += sums[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial_sums[blockIdx.x] = sums[0];
}

__global__ void sum_kernel(const double* partial_sums, unsigned count, double* total) {
  __shared__ double sums[kThreads];
  double local = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += kThreads) local += partial_sums[i];
  sums[threadIdx.x] = local;
  __syncthreads();
  for (unsigned stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) sums[threadIdx.x] += sums[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *total = sums[0];
}

template <typename T>
__global__ void zero_if_non_finite_kernel(T* matrix, std::uint64_t elements, const double* total) {
  if (isfinite(*total)) return;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < elements;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x)
    matrix[i] = 0;
}

}  // namespace

template <typename T>
cudaError_t launch_zero_if_non_finite(T* matrix, std::uint64_t elements, const double* total, cudaStream_t stream) {
  zero_if_non_finite_kernel<T><<<decode_blocks(elements), kThreads, 0, stream>>>(matrix, elements, total);
  return cudaGetLastError();
}
template cudaError_t launch_zero_if_non_finite<float>(float*, std::uint64_t, const double*, cudaStream_t);
template cudaError_t launch_zero_if_non_finite<double>(double*, std::uint64_t, const double*, cudaStream_t);

cudaError_t upload_fp8_table(const float* table256) {
  return cudaMemcpyToSymbol(c_fp8_table, table256, 256 * sizeof(float));
}

unsigned decode_blocks(std::uint64_t elements) {
  const std::uint64_t wanted = (elements + kThreads - 1) / kThreads;
  return static_cast<unsigned>(wanted < 1 ? 1 : wanted > kMaxBlocks ? kMaxBlocks : wanted);
}

template <typename T>
cudaError_t launch_decode(const void* stored, StoredType type, const float* scales, std::uint64_t rows, std::uint64_t cols,
                   std::uint32_t block_rows, std::uint32_t block_cols, std::uint64_t scale_cols, StoredType product,
                   T* out, double* partial_sums, cudaStream_t stream) {
  decode_kernel<T><<<decode_blocks(rows * cols), kThreads, 0, stream>>>(stored, type, scales, rows, cols, block_rows,
                                                                         block_cols, scale_cols, product, out,
                                                                         partial_sums);
  return cudaGetLastError();
}

cudaError_t launch_sum_partials(const double* partial_sums, unsigned count, double* total, cudaStream_t stream) {
  sum_kernel<<<1, kThreads, 0, stream>>>(partial_sums, count, total);
  return cudaGetLastError();
}

template cudaError_t launch_decode<float>(const void*, StoredType, const float*, std::uint64_t, std::uint64_t, std::uint32_t,
                                   std::uint32_t, std::uint64_t, StoredType, float*, double*, cudaStream_t);
template cudaError_t launch_decode<double>(const void*, StoredType, const float*, std::uint64_t, std::uint64_t, std::uint32_t,
                                    std::uint32_t, std::uint64_t, StoredType, double*, double*, cudaStream_t);

}  // namespace vindex::cuda
