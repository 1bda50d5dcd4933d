// The boundary between vindex_mpi and its CUDA backend plugin, libvindex_cuda.so (README, "GPU
// backend"): the one options struct both sides use, the names and types of the plugin's C entry
// points, and the ABI version by which the executable refuses a plugin built to another boundary.
// The executable (src/app/cuda_plugin.cpp) includes this and no CUDA header; the plugin
// (src/cuda/plugin_api.cpp) defines the entry points and checks their types against these.
#pragma once

#include <cstddef>

#include "vindex/run/backend.hpp"

namespace vindex {

// The plugin ABI version. The executable reads the plugin's right after dlopen, before it looks up
// anything else, and refuses a plugin whose version differs (exit 4, naming the file and both
// versions). Bump it by one in the same change as anything that alters what crosses the boundary,
// because the two sides call each other through C++ types whose layout nothing checks at run time:
//   - SpectrumBackend's or SpectrumSink's virtual functions (vindex/run/backend.hpp): added,
//     removed, reordered or retyped -- the vtable;
//   - the layout of what those functions pass: EncodedMatrix and what it holds (TensorView,
//     TensorInfo, ShardFile: vindex/model/dequantize.hpp, vindex/format/checkpoint.hpp),
//     MatrixSpectrum; phase 3's Phase3Inputs and what it refers to (Checkpoint, ModelLayout,
//     CaptureFile, RoutingRule) and LayerPhase3;
//   - the family table (vindex/model/family.hpp): ModelLayout carries a Family, which the plugin
//     looks up in its own copy of the table -- a row added, removed or reordered;
//   - CudaBackendOptions below;
//   - the error classes the plugin throws into the sink (vindex/base/errors.hpp): the executable reads
//     their exit code, file and tensor;
//   - the entry points' names or signatures below (except the two frozen ones).
// A change confined to either side (the kernels, the pipeline, the loader) needs no bump.
// Frozen forever, so that any two builds can recognise each other: the names and types of
// vindex_cuda_plugin_abi_version (int(void)) and vindex_cuda_plugin_git_commit (const char*(void)).
inline constexpr int kCudaPluginAbiVersion = 4;

// What the CUDA backend is made with: filled by the executable (app/backend_factory.cpp), read by
// the plugin (cuda/cuda_backend.cpp), passed by pointer across the boundary.
struct CudaBackendOptions {
  int device = 0;        // the CUDA device this rank drives
  int host_helpers = 0;  // threads that take eigenvalue solves off the GPU (0: none)
  PrecisionPolicy precision = PrecisionPolicy::automatic;  // automatic and fp64: float64 throughout
};
// A tripwire, not a check: whoever changes the struct meets this line, and the bump rule above.
static_assert(sizeof(CudaBackendOptions) == 12 && alignof(CudaBackendOptions) == 4,
              "CudaBackendOptions changed: bump kCudaPluginAbiVersion, then update this size");

inline constexpr const char* kCudaPluginFile = "libvindex_cuda.so";

// The plugin's extern "C" entry points: the names the executable looks up, and their types.
namespace cuda_plugin {

// Frozen (see above).
inline constexpr const char* kAbiVersionSymbol = "vindex_cuda_plugin_abi_version";
using AbiVersionFn = int();
inline constexpr const char* kGitCommitSymbol = "vindex_cuda_plugin_git_commit";  // the build's kGitCommit
using GitCommitFn = const char*();

// Versioned by kCudaPluginAbiVersion. Nothing may throw across them: a failure is a null or -1
// result with the reason written to `why` (NUL-terminated, at most `why_size` bytes).
inline constexpr const char* kVisibleDevicesSymbol = "vindex_cuda_visible_devices";
using VisibleDevicesFn = int(char* why, std::size_t why_size);  // devices, or -1 with the reason
inline constexpr const char* kMakeBackendSymbol = "vindex_cuda_make_backend";
// A new backend, owned by the caller, or null with the reason.
using MakeBackendFn = SpectrumBackend*(const CudaBackendOptions* options, char* why, std::size_t why_size);

}  // namespace cuda_plugin
}  // namespace vindex
