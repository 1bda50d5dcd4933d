// The CUDA backend is a plugin (libvindex_cuda.so), loaded with dlopen only when a run asks for
// it: linking cuBLAS and cuSOLVER into the executable costs every CPU run about 200 MiB of resident
// memory for their relocations. These C entry points are all the executable looks up; their names,
// types and the ABI version are in vindex/run/cuda_plugin_abi.hpp, which both sides include.
#pragma once

#include <cstddef>
#include <type_traits>

#include "vindex/run/cuda_plugin_abi.hpp"

#define VINDEX_PLUGIN_EXPORT __attribute__((visibility("default")))

extern "C" {
// Frozen: kCudaPluginAbiVersion and kGitCommit of the tree the plugin was built from.
VINDEX_PLUGIN_EXPORT int vindex_cuda_plugin_abi_version();
VINDEX_PLUGIN_EXPORT const char* vindex_cuda_plugin_git_commit();
// Visible devices, or -1 with the reason written to `why`.
VINDEX_PLUGIN_EXPORT int vindex_cuda_visible_devices(char* why, std::size_t why_size);
// A new backend (the caller owns it), or null with the reason in `why`.
VINDEX_PLUGIN_EXPORT vindex::SpectrumBackend* vindex_cuda_make_backend(const vindex::CudaBackendOptions* options,
                                                                       char* why, std::size_t why_size);
}

// The definitions have the types the executable calls them through.
static_assert(std::is_same_v<decltype(vindex_cuda_plugin_abi_version), vindex::cuda_plugin::AbiVersionFn>);
static_assert(std::is_same_v<decltype(vindex_cuda_plugin_git_commit), vindex::cuda_plugin::GitCommitFn>);
static_assert(std::is_same_v<decltype(vindex_cuda_visible_devices), vindex::cuda_plugin::VisibleDevicesFn>);
static_assert(std::is_same_v<decltype(vindex_cuda_make_backend), vindex::cuda_plugin::MakeBackendFn>);
