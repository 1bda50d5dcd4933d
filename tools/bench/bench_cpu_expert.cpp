// vindex_bench_cpu: times one stored matrix through the CPU backend's exact code path
// (dequantization, Gram product, eigenvalues) on the calling thread with single-threaded BLAS.
// Used by tools/bench/run_cpu_bench.py, which runs numpy's SVD on the same matrix beside it.
//
//   vindex_bench_cpu --model DIR --tensor NAME [--repeat N]
//
// Prints one JSON object per line: the dequantization alone, then each precision policy.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <cblas.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpu/blas_lapack.hpp"
#include "cpu/gram_eigen_solver.hpp"
#include "vindex/base/aligned_buffer.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
std::vector<double> time_runs(int repeat, F&& f) {
  f();  // warm-up: page cache, buffers, BLAS initialisation
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    const auto start = Clock::now();
    f();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vindex;
  std::string model, tensor;
  int repeat = 3;
  CLI::App app{"Times one matrix through the CPU spectrum path"};
  app.add_option("--model", model, "checkpoint directory")->required();
  app.add_option("--tensor", tensor, "weight tensor name")->required();
  app.add_option("--repeat", repeat, "timed repetitions after one warm-up")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  try {
    cpu::use_one_blas_thread();
    const Checkpoint ckpt = Checkpoint::open(model);
    const ModelLayout layout = detect_layout(ckpt);
    const TensorRecord* w = ckpt.find(tensor);
    if (!w) throw InputError(model, tensor, "no such tensor");
    EncodedMatrix m;
    m.weight = ckpt.view(*w);
    if (const TensorRecord* s = ckpt.find(tensor + "_scale_inv")) m.scale = ckpt.view(*s);
    m.rows = w->info->shape.at(0);
    m.cols = w->info->shape.at(1);
    if (layout.quantization) {
      m.block_rows = layout.quantization->block_rows;
      m.block_cols = layout.quantization->block_cols;
    }

    AlignedBuffer<float> buffer;
    float* out = buffer.reserve(m.rows * m.cols);
    const auto decode = time_runs(repeat, [&] { MatrixDecoder(m).decode(0, m.rows, 0, m.cols, out, m.cols); });
    fmt::print("{}\n", nlohmann::json{{"stage", "dequantize"}, {"rows", m.rows}, {"cols", m.cols},
                                      {"dtype", dtype_name(w->info->dtype)}, {"seconds", decode},
                                      {"blas", openblas_get_config()}, {"blas_kernels", openblas_get_corename()}}
                           .dump());
    for (const auto& [policy, name] : {std::pair{PrecisionPolicy::automatic, "auto"}, std::pair{PrecisionPolicy::fp32, "fp32"},
                                     std::pair{PrecisionPolicy::fp64, "fp64"}}) {
      cpu::GramEigenSolver solver;
      MatrixSpectrum spectrum;
      const auto seconds = time_runs(repeat, [&] { spectrum = solver.solve(m, policy, std::vector<int>{64}); });
      fmt::print("{}\n", nlohmann::json{{"stage", "dequantize+spectrum"}, {"precision", name},
                                        {"gram_bits", static_cast<int>(spectrum.gram_bits)},
                                        {"eigen_bits", static_cast<int>(spectrum.eigen_bits)},
                                        {"sigma_max", std::sqrt(spectrum.eigenvalues.front())},
                                        {"seconds", seconds}}
                             .dump());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "vindex_bench_cpu: error: {}\n", e.what());
    return 3;
  }
  return 0;
}
