// vindex_cuda_probe: whether the `gpu` tests can run here (gpu_skip.hpp); the Python ones ask it
// first (gpu_gate.py). Exit 0 with the device count, 77 (skip) or 1 (VINDEX_REQUIRE_GPU) without.
#include "gpu_skip.hpp"

int main() { return vindex::gpu_tests::skip_without_gpu(); }
