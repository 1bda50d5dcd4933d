#include "cuda_plugin.hpp"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include "../cuda/plugin_api.hpp"
#include "vindex/base/errors.hpp"

namespace vindex::app {
namespace {

struct Plugin {
  void* handle = nullptr;
  std::string error;
  decltype(&vindex_cuda_visible_devices) visible = nullptr;
  decltype(&vindex_cuda_make_backend) make = nullptr;
};

// Loaded once, never unloaded (backends and their threads may outlive any scope here).
const Plugin& plugin() {
  static const Plugin loaded = [] {
    Plugin p;
    std::array<char, PATH_MAX> exe{};
    const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
    const std::filesystem::path dir = n > 0 ? std::filesystem::path(std::string(exe.data(), static_cast<std::size_t>(n))).parent_path()
                                            : std::filesystem::path(".");
    for (const std::filesystem::path& candidate : {dir / kCudaPluginFile, dir / "../lib" / kCudaPluginFile}) {
      p.handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (p.handle) break;
      // Keep the reason from a file that exists (e.g. a missing libcublas), not "no such file".
      const std::string error = ::dlerror();
      std::error_code ec;
      if (p.error.empty() || std::filesystem::exists(candidate, ec)) p.error = error;
    }
    if (!p.handle) {
      p.error = "the CUDA backend plugin " + std::string(kCudaPluginFile) + " could not be loaded (" + p.error + ")";
      return p;
    }
    p.visible = reinterpret_cast<decltype(p.visible)>(::dlsym(p.handle, "vindex_cuda_visible_devices"));
    p.make = reinterpret_cast<decltype(p.make)>(::dlsym(p.handle, "vindex_cuda_make_backend"));
    if (!p.visible || !p.make) p.error = std::string(kCudaPluginFile) + " lacks the vindex plugin entry points";
    return p;
  }();
  return loaded;
}

}  // namespace

int cuda_visible_devices(std::string& why) {
  const Plugin& p = plugin();
  if (!p.visible || !p.make) {
    why = p.error;
    return -1;
  }
  std::array<char, 512> reason{};
  const int count = p.visible(reason.data(), reason.size());
  why = reason.data();
  return count;
}

std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaPluginOptions& options) {
  const Plugin& p = plugin();
  if (!p.make) throw LibraryError("vindex", "dlopen", p.error);
  const cuda::CudaBackendOptions o{options.device, options.host_helpers, options.precision};
  std::array<char, 512> reason{};
  SpectrumBackend* backend = p.make(&o, reason.data(), reason.size());
  if (!backend) throw LibraryError("vindex", "vindex_cuda_make_backend", reason.data());
  return std::unique_ptr<SpectrumBackend>(backend);
}

}  // namespace vindex::app
