#include "backend_factory.hpp"

#include <algorithm>
#include <string>

#include "../cpu/cpu_backend.hpp"

#ifdef VINDEX_HAVE_CUDA
#include "cuda_plugin.hpp"
#endif

namespace vindex::app {
namespace {

#ifdef VINDEX_HAVE_CUDA
constexpr bool kCudaBuilt = true;
int device_count(std::string& why) { return cuda_visible_devices(why); }
#else
constexpr bool kCudaBuilt = false;
int device_count(std::string& why) {
  why = "not built";
  return -1;
}
#endif

}  // namespace

BackendKind choose_backend(const Options& o) {
  std::string why;
  const int devices = o.request.backend == BackendChoice::cpu ? 0 : device_count(why);
  return resolve_backend(o.request.backend, kCudaBuilt, devices, why);
}

std::unique_ptr<SpectrumBackend> make_backend(const RunContext& ctx, BackendKind kind) {
  const Options& o = ctx.options;
#ifdef VINDEX_HAVE_CUDA
  if (kind == BackendKind::cuda) {
    std::string why;
    const int devices = cuda_visible_devices(why);
    CudaBackendOptions co;
    co.device = assign_device(ctx.comm.node_rank(), ctx.comm.node_size(), std::max(devices, 1), o.share_gpus);
    // One thread drives the GPU; the rank's other threads solve eigenvalues on the host.
    co.host_helpers = o.host_helpers >= 0 ? o.host_helpers : std::max(0, ctx.threads - 1);
    co.precision = o.request.precision;
    return make_cuda_backend(co);
  }
#else
  (void)kind;
#endif
  return make_cpu_backend({ctx.threads, o.request.precision, o.request.ks});
}

}  // namespace vindex::app
