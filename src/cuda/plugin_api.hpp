// The CUDA backend is a plugin (libvindex_cuda.so), loaded with dlopen only when a run asks for
// it: linking cuBLAS and cuSOLVER into the executable costs every CPU run about 200 MiB of resident
// memory for their relocations. These two C entry points are all the executable looks up.
#pragma once

#include <cstddef>

#include "cuda_backend.hpp"

#define VINDEX_PLUGIN_EXPORT __attribute__((visibility("default")))

extern "C" {
// Visible devices, or -1 with the reason written to `why` (NUL-terminated, at most `why_size`).
VINDEX_PLUGIN_EXPORT int vindex_cuda_visible_devices(char* why, std::size_t why_size);
// A new backend (the caller owns it), or null with the reason in `why`.
VINDEX_PLUGIN_EXPORT vindex::SpectrumBackend* vindex_cuda_make_backend(const vindex::cuda::CudaBackendOptions* options,
                                                                       char* why, std::size_t why_size);
}

inline constexpr const char* kCudaPluginFile = "libvindex_cuda.so";
