// The MLP layout of a checkpoint: which layers are dense MLPs and which are MoE, where every
// expert's projection matrices and the router live, and how they are stored (plain, fp8 with block
// scales, MXFP4, or one slice of a tensor that fuses all experts). Detected from config.json and
// the tensor names for the families of README "Model families"; everything else (attention,
// norms, embeddings) is ignored.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/format/checkpoint.hpp"
#include "vindex/model/family.hpp"

namespace vindex {

enum class LayerKind : std::uint8_t { dense, moe };
// What a matrix belongs to: the dense MLP of a layer, a routed expert, the shared expert(s), or
// the router of an MoE layer (phase 2).
enum class MatrixRole : std::uint8_t { dense, routed, shared, router };
enum class Projection : std::uint8_t { gate, up, down };
inline constexpr std::array<Projection, 3> kProjections{Projection::gate, Projection::up, Projection::down};

const char* layer_kind_name(LayerKind kind);
const char* role_name(MatrixRole role);  // "dense", "routed", "shared", "router"
const char* projection_name(Projection proj);  // "gate_proj", "up_proj", "down_proj"

// How a matrix's values are stored.
enum class WeightEncoding : std::uint8_t {
  plain,      // F32, BF16, F16 elements
  fp8_block,  // F8_E4M3 times a block scale ("<name>_scale_inv", [ceil(rows/br), ceil(cols/bc)])
  mxfp4,      // U8 blocks of 32 e2m1 values (low nibble first) times 2^(e8m0 scale - 127)
  gguf_blocks,  // a GGUF tensor of a ggml block type (TensorInfo::ggml_type), rows decoded by dequantize_gguf_row
  bitnet_packed,  // transformers' offline BitNet: U8 [rows/4, cols], row r's code in bits 2(r / (rows/4)) of
                  // byte row r % (rows/4); value (code - 1) / weight_scale
  gptq,  // GPTQ 4-bit: I32 qweight [in/8, out], eight codes a word along the input (low bits first), qzeros
         // I32 [groups, out/8], scales [groups, out], g_idx I32 [in]: (q - z[g_idx]) * s[g_idx] in the scales' dtype
  awq,   // AWQ 4-bit GEMM: I32 qweight [in, out/8] and qzeros [in/group, out/8], eight codes a word along the
         // output in the order [0, 2, 4, 6, 1, 3, 5, 7], scales [in/group, out]: (q - z) * s in the scales' dtype
};

// Where one matrix lies in its stored tensor, in elements: element (r, c) of the matrix *as
// stored* is element offset + r * row_stride + c * col_stride of the tensor. A tensor of its own
// has offset 0, row_stride = stored columns and col_stride 1; a fused tensor ([experts, ...])
// holds one slice per expert, read from the mapping in place.
struct StoredSlice {
  std::uint64_t offset = 0;
  std::uint64_t row_stride = 0;
  std::uint64_t col_stride = 1;
  bool transposed = false;  // stored [in_features, out_features] (Llama-4 and GPT-OSS fused experts)
};

// One weight matrix: its tensor, its scales when quantized, its shape as the model applies it
// ([out_features, in_features], like torch.nn.Linear.weight) and where it lies in the tensor.
struct WeightRef {
  const TensorRecord* weight = nullptr;
  const TensorRecord* scale = nullptr;  // fp8_block: the block scale; mxfp4: the e8m0 scales
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  WeightEncoding encoding = WeightEncoding::plain;
  StoredSlice slice;
  // gptq, awq: the packed zero points (qzeros) and GPTQ's input-to-group map (g_idx, when stored).
  const TensorRecord* zeros = nullptr;
  const TensorRecord* g_idx = nullptr;
  bool present() const { return weight != nullptr; }
  // The shape as stored (the transpose of [rows, cols] when slice.transposed).
  std::uint64_t stored_rows() const { return slice.transposed ? cols : rows; }
  std::uint64_t stored_cols() const { return slice.transposed ? rows : cols; }
  // Bytes of this matrix's values and scales (its share of a fused tensor).
  std::uint64_t stored_bytes() const;
};

struct ProjectionSet {
  std::array<WeightRef, 3> by_projection;  // indexed by Projection
  WeightRef& operator[](Projection p) { return by_projection[static_cast<std::size_t>(p)]; }
  const WeightRef& operator[](Projection p) const { return by_projection[static_cast<std::size_t>(p)]; }
};

struct LayerLayout {
  int index = 0;
  LayerKind kind = LayerKind::dense;
  ProjectionSet dense;                // kind == dense
  std::vector<ProjectionSet> routed;  // kind == moe, indexed by expert id
  std::optional<ProjectionSet> shared;  // the shared expert(s) as one MLP, when present
  WeightRef router;                           // [experts, hidden] (mlp.gate.weight, router.weight, ...)
  const TensorRecord* router_bias = nullptr;  // [experts]: e_score_correction_bias or router.bias
  const TensorRecord* shared_expert_gate = nullptr;  // Qwen2-MoE's [1, hidden] gate of the shared expert
};

// How the scale of an F8_E4M3 weight is laid out: one per block of block_rows x block_cols
// (DeepSeek-V3, Kimi-K2, compressed-tensors' block strategy), one for the whole tensor, or one per
// output row (channel).
enum class Fp8Scaling : std::uint8_t { block, tensor, channel };
const char* fp8_scaling_name(Fp8Scaling s);

// config.json's quantization_config, as read (src/core/model/quantization_config.cpp says which
// are known). Its fp8 fields say how an F8_E4M3 weight is decoded: weight x scale, the scale tensor
// named <weight name><scale_suffix>, one float32 product -- rounded to the scale's dtype where the
// publisher's library computes in it (compressed-tensors). MXFP4 needs none of them; packed BitNet
// (method "bitnet") only scale_suffix; GPTQ and AWQ (4-bit integers with group scales and zero points)
// the bits, group_size and their flags.
struct BlockQuantization {
  std::string method;  // quant_method: "fp8", "fbgemm_fp8", "compressed-tensors", "bitnet", "gptq", "awq", "mxfp4"
  std::string format;  // quantization_config.fmt ("e4m3"), compressed-tensors' format ("float-quantized"),
                       // GPTQ's checkpoint_format ("gptq", "gptq_v2") or AWQ's version ("gemm")
  Fp8Scaling scaling = Fp8Scaling::block;
  std::uint32_t block_rows = 128;  // scaling == block
  std::uint32_t block_cols = 128;
  std::string scale_suffix = "_scale_inv";  // "weight_scale_inv" (DeepSeek) or "weight_scale"
  bool product_in_scale_dtype = false;      // compressed-tensors: x_q.to(scale.dtype) * scale
  // gptq, awq: bits per code (4), inputs per group (-1: one group), act-order (GPTQ's desc_act: g_idx a
  // permutation of the groups), sym (GPTQ) or zero_point (AWQ), and whether the stored zero points are
  // zero - 1 (GPTQ's checkpoint_format "gptq", v1: its loaders add 0x11111111 to every qzeros word).
  std::uint32_t bits = 0;
  std::int64_t group_size = -1;
  bool desc_act = false;
  bool sym = true;
  bool zeros_minus_one = false;
  bool packed_int() const { return method == "gptq" || method == "awq"; }

  // The rows x cols of the block that one scale covers in a rows x cols weight.
  std::pair<std::uint64_t, std::uint64_t> scale_block(std::uint64_t rows, std::uint64_t cols) const {
    switch (scaling) {
      case Fp8Scaling::tensor: return {rows, cols};
      case Fp8Scaling::channel: return {1, cols};
      case Fp8Scaling::block: break;
    }
    return {block_rows, block_cols};
  }
};

struct ModelLayout {
  Family family = Family::dense_decoder;  // its row in the family table (vindex/model/family.hpp)
  std::string model_type;  // config.json model_type (of text_config for multimodal checkpoints)
  std::vector<std::string> architectures;
  std::string hidden_act;  // config.json hidden_act (hidden_activation), "" when absent (GGUF)
  std::string gguf_architecture;  // a GGUF checkpoint's general.architecture ("" for safetensors)
  int num_layers = 0;
  std::uint64_t hidden_size = 0;
  std::uint64_t intermediate_size = 0;
  std::uint64_t moe_intermediate_size = 0;
  std::uint64_t shared_intermediate_size = 0;  // the shared expert(s) together
  int n_routed_experts = 0;
  int n_shared_experts = 0;
  int experts_per_token = 0;
  std::string moe_layer_rule;  // how config.json picks the MoE layers, e.g. "first_k_dense_replace=1, moe_layer_freq=1"
  std::optional<BlockQuantization> quantization;
  std::vector<LayerLayout> layers;  // indexed by layer
  std::vector<int> skipped_layers;  // tensors of layers past num_hidden_layers (MTP modules)
  std::size_t ignored_tensors = 0;  // attention, norms, embeddings...
  nlohmann::json routing;           // routing parameters copied from config.json

  std::vector<int> dense_layers() const;
  std::vector<int> moe_layers() const;
};

// Detects the layout. Unknown architectures, missing or misshapen expert tensors, missing block
// scales and contradictions with config.json are InputErrors naming the file and tensor.
ModelLayout detect_layout(const Checkpoint& checkpoint);

}  // namespace vindex
