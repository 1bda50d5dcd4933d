#include "plugin_api.hpp"

#include <cstdio>
#include <exception>

#include "cuda_backend.hpp"
#include "vindex/version.hpp"

namespace {

void copy_reason(const char* text, char* why, std::size_t why_size) {
  if (why && why_size) std::snprintf(why, why_size, "%s", text);
}

}  // namespace

extern "C" int vindex_cuda_plugin_abi_version() { return vindex::kCudaPluginAbiVersion; }

extern "C" const char* vindex_cuda_plugin_git_commit() { return vindex::kGitCommit; }

extern "C" int vindex_cuda_visible_devices(char* why, std::size_t why_size) {
  try {
    std::string reason;
    const int count = vindex::cuda::visible_devices(reason);
    copy_reason(reason.c_str(), why, why_size);
    return count;
  } catch (const std::exception& e) {  // nothing may cross a C boundary
    copy_reason(e.what(), why, why_size);
    return -1;
  }
}

extern "C" vindex::SpectrumBackend* vindex_cuda_make_backend(const vindex::CudaBackendOptions* options, char* why,
                                                             std::size_t why_size) {
  try {
    return vindex::cuda::make_cuda_backend(*options).release();
  } catch (const std::exception& e) {
    copy_reason(e.what(), why, why_size);
    return nullptr;
  }
}
