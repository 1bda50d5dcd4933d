// Loading the CUDA backend plugin (src/cuda/plugin_api.hpp) from beside the executable.
#pragma once

#include <memory>
#include <string>

#include "vindex/run/backend.hpp"

namespace vindex::app {

struct CudaPluginOptions {
  int device = 0;
  int host_helpers = 0;
  PrecisionPolicy precision = PrecisionPolicy::automatic;
};

// Devices visible to the plugin's CUDA runtime; -1 with `why` when the plugin or the driver is
// missing.
int cuda_visible_devices(std::string& why);

// Throws LibraryError (exit 4) when the backend cannot be made.
std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaPluginOptions& options);

}  // namespace vindex::app
