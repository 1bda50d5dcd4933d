// Which spectrum backend a run uses and which GPU each rank drives: backend-free decisions, made
// from what the CUDA runtime reports (README, "GPU backend").
#pragma once

#include <string>

namespace vindex {

enum class BackendKind { cpu, cuda };
// What --backend asks for.
enum class BackendChoice { cpu, cuda, automatic };

const char* backend_name(BackendKind kind);  // "cpu", "cuda"
// "cpu", "cuda", "auto"; anything else is a UsageError naming --backend.
BackendChoice parse_backend_choice(const std::string& text);

// --backend against what this build and machine offer. `device_count` < 0 means the CUDA runtime
// could not be queried (`why` says why). cuda without a usable device is a UsageError; auto falls
// back to cpu.
BackendKind resolve_backend(BackendChoice requested, bool cuda_built, int device_count, const std::string& why);

// The device of the rank `node_rank` of `node_size` ranks on a node with `device_count` GPUs: one
// rank per GPU. More ranks than GPUs is a UsageError unless `share` (then ranks go round-robin).
int assign_device(int node_rank, int node_size, int device_count, bool share);

}  // namespace vindex
