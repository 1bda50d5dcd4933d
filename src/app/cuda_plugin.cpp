#include "cuda_plugin.hpp"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <array>
#include <exception>
#include <filesystem>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/version.hpp"

namespace vindex::app {
namespace {

struct Plugin {
  std::string unavailable;  // why no plugin could be loaded (not installed; a library it needs is missing)
  std::exception_ptr unusable;  // a PluginError: it loaded, but must not be called
  cuda_plugin::VisibleDevicesFn* visible = nullptr;
  cuda_plugin::MakeBackendFn* make = nullptr;
};

template <class Fn>
Fn* find_symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn*>(::dlsym(handle, name));
}

constexpr const char* kRebuild = "rebuild and install both from one source tree";

// The plugin's ABI version against ours, before anything else in it is looked up or called: a
// plugin from another tree could take other arguments behind the same names.
void check_abi(void* handle, const std::string& path) {
  auto* version = find_symbol<cuda_plugin::AbiVersionFn>(handle, cuda_plugin::kAbiVersionSymbol);
  if (!version)
    throw PluginError(kCudaPluginFile, path,
                      fmt::format("the plugin has no ABI version (it lacks {}: it predates versioned plugins or is "
                                  "not vindex_mpi's), this vindex_mpi expects {} (commit {}); {}",
                                  cuda_plugin::kAbiVersionSymbol, kCudaPluginAbiVersion, kGitCommit, kRebuild));
  const int found = version();
  if (found == kCudaPluginAbiVersion) return;
  // The commit's entry point is frozen like the version's, so it may be asked of any version.
  auto* commit = find_symbol<cuda_plugin::GitCommitFn>(handle, cuda_plugin::kGitCommitSymbol);
  const char* plugin_commit = commit ? commit() : nullptr;
  throw PluginError(kCudaPluginFile, path,
                    fmt::format("plugin ABI version {}{}, this vindex_mpi expects {} (commit {}); {}", found,
                                plugin_commit ? fmt::format(" (commit {})", plugin_commit) : std::string(),
                                kCudaPluginAbiVersion, kGitCommit, kRebuild));
}

Plugin load(void* handle, const std::string& path) {
  Plugin p;
  try {
    check_abi(handle, path);
    p.visible = find_symbol<cuda_plugin::VisibleDevicesFn>(handle, cuda_plugin::kVisibleDevicesSymbol);
    p.make = find_symbol<cuda_plugin::MakeBackendFn>(handle, cuda_plugin::kMakeBackendSymbol);
    const char* missing = !p.visible ? cuda_plugin::kVisibleDevicesSymbol
                          : !p.make  ? cuda_plugin::kMakeBackendSymbol
                                     : nullptr;
    if (missing)
      throw PluginError(kCudaPluginFile, path,
                        fmt::format("the plugin has ABI version {} but lacks its entry point {}; {}",
                                    kCudaPluginAbiVersion, missing, kRebuild));
  } catch (const PluginError&) {
    p = Plugin{};
    p.unusable = std::current_exception();
    ::dlclose(handle);
  }
  return p;
}

// Loaded once, never unloaded (backends and their threads may outlive any scope here); an unusable
// plugin is closed at once and its PluginError thrown to every caller.
const Plugin& plugin() {
  static const Plugin loaded = [] {
    std::array<char, PATH_MAX> exe{};
    const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
    const std::filesystem::path dir = n > 0 ? std::filesystem::path(std::string(exe.data(), static_cast<std::size_t>(n))).parent_path()
                                            : std::filesystem::path(".");
    std::string error;
    for (const std::filesystem::path& candidate : {dir / kCudaPluginFile, dir / "../lib" / kCudaPluginFile}) {
      // The first plugin that loads is the one: a stale one beside the executable is reported, not
      // skipped for another.
      if (void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL))
        return load(handle, candidate.lexically_normal().string());
      // Keep the reason from a file that exists (e.g. a missing libcublas), not "no such file".
      const std::string reason = ::dlerror();
      std::error_code ec;
      if (error.empty() || std::filesystem::exists(candidate, ec)) error = reason;
    }
    Plugin p;
    p.unavailable = "the CUDA backend plugin " + std::string(kCudaPluginFile) + " could not be loaded (" + error + ")";
    return p;
  }();
  if (loaded.unusable) std::rethrow_exception(loaded.unusable);
  return loaded;
}

}  // namespace

int cuda_visible_devices(std::string& why) {
  const Plugin& p = plugin();
  if (!p.visible) {
    why = p.unavailable;
    return -1;
  }
  std::array<char, 512> reason{};
  const int count = p.visible(reason.data(), reason.size());
  why = reason.data();
  return count;
}

std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaBackendOptions& options) {
  const Plugin& p = plugin();
  if (!p.make) throw LibraryError("vindex", "dlopen", p.unavailable);
  std::array<char, 512> reason{};
  SpectrumBackend* backend = p.make(&options, reason.data(), reason.size());
  if (!backend) throw LibraryError("vindex", cuda_plugin::kMakeBackendSymbol, reason.data());
  return std::unique_ptr<SpectrumBackend>(backend);
}

}  // namespace vindex::app
