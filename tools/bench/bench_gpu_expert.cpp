// vindex_bench_gpu: times the CUDA backend on the routed down_proj experts of a checkpoint (the
// same compute() the run calls), steady state: one warm-up pass, then timed passes. Prints one
// JSON object per configuration: ms per expert and where the time went (read, H2D, dequant,
// Gram, eigenvalues on the GPU / on host helpers).
//
//   vindex_bench_gpu --model DIR [--matrices 64] [--helpers 0,15] [--precision auto] [--repeat 2]
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cuda/cuda_backend.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/rank_computation.hpp"

namespace {

class CountingSink final : public vindex::SpectrumSink {
 public:
  void deliver(std::size_t, vindex::MatrixSpectrum&&) override {
    const std::lock_guard lock(m_);
    ++done_;
  }
  void fail(std::size_t, std::exception_ptr e) override {
    const std::lock_guard lock(m_);
    if (!error_) error_ = e;
  }
  bool should_stop() const override { return false; }
  std::size_t done() const { return done_; }
  std::exception_ptr error() const { return error_; }

 private:
  mutable std::mutex m_;
  std::size_t done_ = 0;
  std::exception_ptr error_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace vindex;
  std::string model, helpers_text = "0", precision = "auto";
  std::size_t count = 64;
  int repeat = 2, device = 0;
  CLI::App app{"Times the CUDA backend on routed experts"};
  app.add_option("--model", model, "checkpoint directory")->required();
  app.add_option("--matrices", count, "routed down_proj matrices to time");
  app.add_option("--helpers", helpers_text, "host helper thread counts to time, comma-separated");
  app.add_option("--precision", precision)->check(CLI::IsMember({"auto", "fp32", "fp64"}));
  app.add_option("--repeat", repeat)->check(CLI::Range(1, 20));
  app.add_option("--device", device);
  CLI11_PARSE(app, argc, argv);
  try {
    const Checkpoint ckpt = Checkpoint::open(model);
    const ModelLayout layout = detect_layout(ckpt);
    std::vector<int> layers;
    for (const LayerLayout& l : layout.layers) layers.push_back(l.index);
    std::vector<WorkItem> items;
    for (const WorkItem& it : plan_items(layout, ckpt, layers, PlanRequest{}))
      if (it.key.role == MatrixRole::routed && items.size() < count) items.push_back(it);
    const std::vector<EncodedMatrix> matrices = encode_items(ckpt, items, layout.quantization);
    const PrecisionPolicy policy = precision == "fp32"   ? PrecisionPolicy::fp32
                                   : precision == "fp64" ? PrecisionPolicy::fp64
                                                         : PrecisionPolicy::automatic;
    std::size_t start = 0;
    while (start <= helpers_text.size()) {
      const std::size_t comma = std::min(helpers_text.find(',', start), helpers_text.size());
      const int helpers = std::stoi(helpers_text.substr(start, comma - start));
      start = comma + 1;
      auto backend = cuda::make_cuda_backend({device, helpers, policy});
      CountingSink warm;
      backend->compute(matrices, warm);  // page cache, buffers, cuSOLVER workspaces
      if (warm.error()) std::rethrow_exception(warm.error());
      const cuda::StageTimes before = cuda::stage_times(*backend);
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < repeat; ++r) {
        CountingSink sink;
        backend->compute(matrices, sink);
        if (sink.error()) std::rethrow_exception(sink.error());
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const cuda::StageTimes t = cuda::stage_times(*backend);
      const double n = static_cast<double>(matrices.size()) * repeat;
      const nlohmann::ordered_json j{
          {"method", fmt::format("vindex cuda, {} host helper(s), precision {}", helpers, precision)},
          {"matrices", matrices.size()}, {"repeat", repeat}, {"ms_per_expert", ms / n},
          {"read_ms", (t.read_ms - before.read_ms) / n}, {"h2d_ms", (t.h2d_ms - before.h2d_ms) / n},
          {"dequant_ms", (t.dequant_ms - before.dequant_ms) / n}, {"gram_ms", (t.gram_ms - before.gram_ms) / n},
          {"eigen_gpu_ms_each", (t.on_gpu - before.on_gpu) ? (t.eigen_gpu_ms - before.eigen_gpu_ms) / static_cast<double>(t.on_gpu - before.on_gpu) : 0.0},
          {"eigen_host_ms_each", (t.on_host - before.on_host) ? (t.eigen_host_ms - before.eigen_host_ms) / static_cast<double>(t.on_host - before.on_host) : 0.0},
          {"on_gpu", t.on_gpu - before.on_gpu}, {"on_host", t.on_host - before.on_host},
          {"backend", backend->description()}};
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vindex_bench_gpu: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
