// The gate of the `gpu` tests (CTest label gpu): 0 where a CUDA device can be used; else prints why
// and returns 77, CTest's SKIP_RETURN_CODE for these tests, so a machine without a GPU reports them
// as skipped, never as passed. Where VINDEX_REQUIRE_GPU is set (tools/gpu_check.sh, on a machine
// that must have one), no device is a failure instead: 1.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace vindex::gpu_tests {

inline constexpr int kSkipped = 77;

inline int skip_without_gpu() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess && count > 0) {
    std::printf("CUDA devices: %d\n", count);
    return 0;
  }
  const bool required = std::getenv("VINDEX_REQUIRE_GPU") != nullptr;
  if (status != cudaSuccess)
    std::printf("%s: no CUDA device (cudaGetDeviceCount: %s: %s)\n", required ? "FAIL" : "skipped",
                cudaGetErrorName(status), cudaGetErrorString(status));
  else
    std::printf("%s: no CUDA device (cudaGetDeviceCount reports 0 devices)\n", required ? "FAIL" : "skipped");
  std::fflush(stdout);
  return required ? 1 : kSkipped;
}

}  // namespace vindex::gpu_tests
