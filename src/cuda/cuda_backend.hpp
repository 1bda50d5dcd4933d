// The CUDA spectrum backend (README, "GPU backend"): per matrix, the stored bytes go from the
// memory map into pinned memory and to the GPU as stored (fp8: a quarter of float32's bytes), are
// dequantized there with the CPU's arithmetic, the Gram matrix of the smaller side is formed with
// cuBLAS syrk, and its eigenvalues come from cuSOLVER -- or, for a share of the matrices, from
// LAPACK on host helper threads, so the CPUs add their throughput. Two pipeline slots: reading and
// copying matrix i+1 overlaps the GPU's work on matrix i.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vindex/run/backend.hpp"
#include "vindex/run/cuda_plugin_abi.hpp"

namespace vindex::cuda {

// The options are the plugin boundary's (vindex/run/cuda_plugin_abi.hpp): the executable fills the
// same struct.
using vindex::CudaBackendOptions;

// Where a backend's time went, summed over the matrices it computed (milliseconds).
struct StageTimes {
  double read_ms = 0;        // memory map -> pinned staging (page cache or disk)
  double h2d_ms = 0;         // staging -> device
  double dequant_ms = 0;     // decode kernel and the sum of squares
  double gram_ms = 0;        // syrk
  double eigen_gpu_ms = 0;   // cuSOLVER syevd (matrices solved on the GPU)
  double eigen_host_ms = 0;  // LAPACK on a helper thread (matrices solved on the host)
  std::size_t on_gpu = 0, on_host = 0;
};

std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaBackendOptions& options);
// The stage times of a backend made by make_cuda_backend (for the benchmark).
StageTimes stage_times(const SpectrumBackend& backend);

// Devices the CUDA runtime reports; -1 with the reason in `why` when it cannot be asked (no driver).
int visible_devices(std::string& why);

}  // namespace vindex::cuda
