// Checked calls into the CUDA runtime, cuBLAS and cuSOLVER: a failing status becomes a
// LibraryError naming the call and where it was made (exit 4).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "vindex/base/errors.hpp"

namespace vindex::cuda {

inline void check(cudaError_t status, const char* call, SourceLocation where = SourceLocation::current()) {
  if (status != cudaSuccess) throw LibraryError("CUDA", call, cudaGetErrorString(status), where);
}
inline void check(cublasStatus_t status, const char* call, SourceLocation where = SourceLocation::current()) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw LibraryError("cuBLAS", call, "status " + std::to_string(static_cast<int>(status)), where);
}
inline void check(cusolverStatus_t status, const char* call, SourceLocation where = SourceLocation::current()) {
  if (status != CUSOLVER_STATUS_SUCCESS)
    throw LibraryError("cuSOLVER", call, "status " + std::to_string(static_cast<int>(status)), where);
}

}  // namespace vindex::cuda

#define VINDEX_CUDA_CHECK(call) ::vindex::cuda::check((call), #call)
