// The CPU spectrum backend: a pool of threads, each taking the next matrix and computing it with
// single-threaded BLAS (matrix-level parallelism scales better than threading one eigensolver).
#include "cpu_backend.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <cblas.h>
#include <fmt/format.h>

#include "blas_lapack.hpp"
#include "gram_eigen_solver.hpp"
#include "phase3_layer.hpp"

namespace vindex {
namespace {

class CpuBackend final : public SpectrumBackend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options) : options_(options) {
    // Each worker owns one matrix at a time; BLAS must not spawn threads of its own.
    cpu::use_one_blas_thread();
  }

  std::string name() const override { return "cpu"; }

  std::string description() const override {
    return fmt::format("cpu: {} thread(s), precision {}, LAPACK syrk + syevd_2stage, {}",
                       options_.threads, precision_policy_name(options_.precision), openblas_get_config());
  }

  void compute(std::span<const EncodedMatrix> matrices, SpectrumSink& sink) override {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    const std::size_t lookahead = static_cast<std::size_t>(options_.threads);
    auto worker = [&] {
      cpu::GramEigenSolver solver;
      while (!failed.load() && !sink.should_stop()) {
        const std::size_t i = next.fetch_add(1);
        if (i >= matrices.size()) return;
        // Have the kernel read ahead the matrix a worker will take next while this one computes.
        if (i + lookahead < matrices.size()) matrices[i + lookahead].will_need();
        const EncodedMatrix& m = matrices[i];
        try {
          MatrixSpectrum spectrum = solver.solve(m, options_.precision, options_.ks);
          sink.deliver(i, std::move(spectrum));
        } catch (...) {
          failed.store(true);
          sink.fail(i, std::current_exception());
          return;
        }
      }
    };
    for (std::size_t i = 0; i < std::min(lookahead, matrices.size()); ++i) matrices[i].will_need();
    std::vector<std::jthread> pool;
    for (int t = 1; t < options_.threads; ++t) pool.emplace_back(worker);
    worker();
  }

  LayerPhase3 phase3_layer(const Phase3Inputs& inputs, int layer) override {
    return cpu::compute_layer_phase3(inputs, layer);
  }

 private:
  CpuBackendOptions options_;
};

}  // namespace

std::unique_ptr<SpectrumBackend> make_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace vindex
