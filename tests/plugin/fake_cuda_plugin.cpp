// A stand-in for libvindex_cuda.so built to another plugin ABI, for the test that the executable
// refuses it (tests/integration/plugin_abi_mismatch.py): the same entry points as the real plugin
// (src/cuda/plugin_api.hpp), no CUDA. Built twice: reporting kCudaPluginAbiVersion + 1, and
// (VINDEX_FAKE_PLUGIN_UNVERSIONED) without the version entry point at all, as plugins were before
// the ABI was versioned. Its other entry points claim two GPUs and then fail loudly, so a loader
// that called them instead of refusing the plugin would be caught by the message it prints.
#include <cstdio>

#include "cuda/plugin_api.hpp"

#ifndef VINDEX_FAKE_PLUGIN_UNVERSIONED
extern "C" int vindex_cuda_plugin_abi_version() { return vindex::kCudaPluginAbiVersion + 1; }
extern "C" const char* vindex_cuda_plugin_git_commit() { return "fake-plugin"; }
#endif

extern "C" int vindex_cuda_visible_devices(char* why, std::size_t why_size) {
  std::fprintf(stderr, "the fake plugin's vindex_cuda_visible_devices was called\n");
  if (why && why_size) std::snprintf(why, why_size, "%s", "");
  return 2;
}

extern "C" vindex::SpectrumBackend* vindex_cuda_make_backend(const vindex::CudaBackendOptions*, char* why,
                                                             std::size_t why_size) {
  if (why && why_size) std::snprintf(why, why_size, "%s", "the fake plugin's vindex_cuda_make_backend was called");
  return nullptr;
}
