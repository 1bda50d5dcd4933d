// The CPU backend (LAPACK): its options and factory.
#pragma once

#include <memory>
#include <vector>

#include "vindex/run/backend.hpp"
#include "vindex/run/run_request.hpp"

namespace vindex {

struct CpuBackendOptions {
  int threads = 1;  // matrices computed concurrently, each with single-threaded BLAS
  PrecisionPolicy precision = PrecisionPolicy::automatic;
  std::vector<int> ks{kDefaultK};  // the k values of var@k, for the accuracy policy
};

std::unique_ptr<SpectrumBackend> make_cpu_backend(const CpuBackendOptions& options);

}  // namespace vindex
