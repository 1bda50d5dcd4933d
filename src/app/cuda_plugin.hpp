// Loading the CUDA backend plugin (src/cuda/plugin_api.hpp) from beside the executable, or from
// ../lib, and checking that it was built to this executable's plugin ABI
// (vindex/run/cuda_plugin_abi.hpp).
#pragma once

#include <memory>
#include <string>

#include "vindex/run/backend.hpp"
#include "vindex/run/cuda_plugin_abi.hpp"

namespace vindex::app {

// Devices visible to the plugin's CUDA runtime; -1 with `why` when no plugin can be loaded (none
// installed, or a library it needs such as libcublas is missing) or the driver is missing. Throws
// PluginError (exit 4) for a plugin that loads but was built to another ABI or lacks its entry
// points: an installation to repair, never a reason to fall back to the CPU quietly.
int cuda_visible_devices(std::string& why);

// Throws PluginError as above, or LibraryError (exit 4) when the backend cannot be made.
std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaBackendOptions& options);

}  // namespace vindex::app
