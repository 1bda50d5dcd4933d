#include "vindex/run/device_assignment.hpp"

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex {

const char* backend_name(BackendKind kind) { return kind == BackendKind::cuda ? "cuda" : "cpu"; }

BackendChoice parse_backend_choice(const std::string& text) {
  if (text == "cpu") return BackendChoice::cpu;
  if (text == "cuda") return BackendChoice::cuda;
  if (text == "auto") return BackendChoice::automatic;
  throw UsageError(fmt::format("--backend: unknown backend '{}'", text));
}

BackendKind resolve_backend(BackendChoice requested, bool cuda_built, int device_count, const std::string& why) {
  if (requested == BackendChoice::cpu) return BackendKind::cpu;
  const bool usable = cuda_built && device_count > 0;
  if (requested == BackendChoice::automatic) return usable ? BackendKind::cuda : BackendKind::cpu;
  if (!cuda_built)
    throw UsageError("--backend cuda: this build has no CUDA backend (configure with a CUDA toolkit: "
                     "cmake -DVINDEX_CUDA=ON); use --backend cpu");
  if (device_count <= 0)
    throw UsageError(fmt::format("--backend cuda: no CUDA device is visible ({}); use --backend cpu",
                                 device_count == 0 ? "the runtime reports 0 devices" : why));
  return BackendKind::cuda;
}

int assign_device(int node_rank, int node_size, int device_count, bool share) {
  VINDEX_ASSERT(device_count > 0 && node_rank >= 0 && node_rank < node_size);
  if (node_size > device_count && !share)
    throw UsageError(fmt::format("--backend cuda: {} ranks on this node but {} GPU(s); start one rank per GPU, or "
                                 "pass --share-gpus to let ranks share them",
                                 node_size, device_count));
  return node_rank % device_count;
}

}  // namespace vindex
