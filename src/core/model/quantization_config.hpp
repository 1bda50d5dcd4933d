// config.json's quantization_config: which post-training quantizations are read, and how an
// F8_E4M3 weight's scale is laid out in each (vindex/model/layout.hpp, BlockQuantization).
#pragma once

#include <optional>

#include "config_reader.hpp"
#include "vindex/model/layout.hpp"

namespace vindex::layout_detail {

// The quantization config.json declares, nullopt when it declares none. Known (README, "Formats"):
//   fp8 with weight_block_size: block scales weight_scale_inv (DeepSeek-V3, Kimi-K2, Qwen3 FP8;
//       transformers' FineGrainedFP8);
//   fp8 without it: one float32 weight_scale per tensor (AutoFP8's static layout, read by vLLM);
//   fbgemm_fp8: one float32 weight_scale per output row;
//   compressed-tensors, format float-quantized (or naive-quantized) with 8-bit float weights,
//       symmetric, strategy tensor, channel or block: weight_scale, the product in its dtype;
//   bitnet: transformers' offline bitlinear, U8 [out/4, in] codes and one weight_scale;
//   gptq: bits 4, group_size (-1: one group), desc_act (act-order g_idx), sym, checkpoint_format gptq
//       (v1: qzeros stored minus one) or gptq_v2;
//   awq: bits 4, version gemm, zero_point true, group_size;
//   mxfp4 (GPT-OSS).
// Anything else, or an inconsistent one, is an InputError naming the key and listing these.
std::optional<BlockQuantization> read_quantization_config(const ConfigReader& top);

}  // namespace vindex::layout_detail
