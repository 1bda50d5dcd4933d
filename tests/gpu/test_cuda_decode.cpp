// GPU check (CTest test gpu_decode_matches_cpu, label gpu; skipped where no GPU is visible): every
// weight matrix of the fixtures (whole tensors: plain, and fp8 with block, per-row and per-tensor
// scales, the product rounded to bf16 or fp16 for compressed-tensors), dequantized by the CUDA
// kernel, must equal the CPU decoder's float32 values bit for bit, and the device's float64 sum of
// squares must match the CPU's to 1e-12 relative (the order of summation differs).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cuda_resources.hpp"
#include "cuda/decode_kernels.hpp"
#include "gpu_skip.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/dequantize.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/rank_computation.hpp"

int main(int argc, char** argv) {
  using namespace vindex;
  using namespace vindex::cuda;
  if (const int skipped = gpu_tests::skip_without_gpu()) return skipped;
  int failures = 0, checked = 0;
  try {
    std::vector<float> table(256);
    for (int c = 0; c < 256; ++c) table[static_cast<std::size_t>(c)] = fp8_e4m3_to_float(static_cast<std::uint8_t>(c));
    VINDEX_CUDA_CHECK(upload_fp8_table(table.data()));
    VINDEX_CUDA_CHECK(cudaDeviceSynchronize());  // the upload runs on the legacy stream
    Stream stream;
    for (int a = 1; a < argc; ++a) {
      const Checkpoint ckpt = Checkpoint::open(argv[a]);
      const ModelLayout layout = detect_layout(ckpt);
      std::vector<int> layers;
      for (const LayerLayout& l : layout.layers) layers.push_back(l.index);
      const auto items = plan_items(layout, ckpt, layers, PlanRequest{});
      const auto matrices = encode_items(ckpt, items, layout.quantization);
      for (std::size_t i = 0; i < matrices.size(); ++i) {
        const EncodedMatrix& m = matrices[i];
        const MatrixDecoder decoder(m);
        std::vector<float> cpu(m.rows * m.cols);
        const double cpu_sq = decoder.decode(0, m.rows, 0, m.cols, cpu.data(), m.cols);
        const auto bytes = decoder.weight_bytes();  // the matrix's stored bytes as read
        DeviceBuffer<std::byte> raw(bytes.size());
        DeviceBuffer<float> scales(std::max<std::size_t>(decoder.scales().size(), 1));
        DeviceBuffer<float> out(cpu.size());
        DeviceBuffer<double> partials(decode_blocks(cpu.size())), total(1);
        VINDEX_CUDA_CHECK(cudaMemcpy(raw.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
        if (!decoder.scales().empty())
          VINDEX_CUDA_CHECK(cudaMemcpy(scales.get(), decoder.scales().data(), decoder.scales().size() * sizeof(float),
                                       cudaMemcpyHostToDevice));
        const StoredType type = m.weight.info().dtype == DType::F8_E4M3 ? StoredType::f8_e4m3
                                : m.weight.info().dtype == DType::BF16  ? StoredType::bf16
                                : m.weight.info().dtype == DType::F16   ? StoredType::f16
                                                                        : StoredType::f32;
        VINDEX_CUDA_CHECK(launch_decode<float>(raw.get(), type, decoder.scales().empty() ? nullptr : scales.get(), m.rows,
                                               m.cols, m.block_rows, m.block_cols, (m.cols + m.block_cols - 1) / m.block_cols,
                                               m.product_dtype == DType::BF16  ? StoredType::bf16
                                               : m.product_dtype == DType::F16 ? StoredType::f16
                                                                               : StoredType::f32,
                                               out.get(), partials.get(), stream.get()));
        VINDEX_CUDA_CHECK(launch_sum_partials(partials.get(), decode_blocks(cpu.size()), total.get(), stream.get()));
        stream.synchronize();
        std::vector<float> gpu(cpu.size());
        double gpu_sq = 0;
        VINDEX_CUDA_CHECK(cudaMemcpy(gpu.data(), out.get(), gpu.size() * sizeof(float), cudaMemcpyDeviceToHost));
        VINDEX_CUDA_CHECK(cudaMemcpy(&gpu_sq, total.get(), sizeof(double), cudaMemcpyDeviceToHost));
        ++checked;
        if (std::memcmp(gpu.data(), cpu.data(), cpu.size() * sizeof(float)) != 0) {
          std::printf("FAIL: %s: decoded values differ from the CPU's\n", m.weight.name().c_str());
          ++failures;
        }
        if (std::abs(gpu_sq - cpu_sq) > 1e-12 * cpu_sq) {
          std::printf("FAIL: %s: sum of squares %.17g on the GPU, %.17g on the CPU\n", m.weight.name().c_str(), gpu_sq, cpu_sq);
          ++failures;
        }
      }
    }
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("cuda decode: %d matrices checked, %d failure(s)\n", checked, failures);
  return failures ? 1 : 0;
}
