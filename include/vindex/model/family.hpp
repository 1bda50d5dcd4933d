// The model families vindex_mpi reads: one enum and one row of traits per family (as llama.cpp's
// llama-arch.cpp keeps one table of architectures). Layout detection, routing, phase 3 and
// `inspect` ask this table; no other file compares family names.
//
// Adding a family is one row in family.cpp (its names, how config.json says which layers are MoE
// and how wide they are, how its tensors are named and stored, how it routes and activates) plus a
// fixture saved by transformers' own class (tests/fixtures/hf). The table is compiled into the CUDA
// plugin too (phase 3 runs there): a new or reordered row changes what crosses the plugin's
// boundary, so it bumps kCudaPluginAbiVersion (vindex/run/cuda_plugin_abi.hpp). How the weights are stored -- the
// container (safetensors; GGUF) and the quantization (dtypes, block fp8, MXFP4, post-quantized
// formats) -- is not a family trait: it is read from the files and decoded per tensor
// (dequantize.hpp), so a new container or format adds a reader or a decoder, never a column here.
// A container that names architectures its own way (GGUF's general.architecture) maps its names to
// these rows as `model_types` does for config.json.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vindex {

struct ModelLayout;
namespace layout_detail {
class ConfigReader;
}

enum class Family : std::uint8_t {
  deepseek_v3,    // DeepSeek-V2/V3, Kimi-K2
  qwen2_moe,
  qwen3_moe,
  mixtral,
  olmoe,
  gpt_oss,
  llama4,
  dense_decoder,  // Llama, Mistral, Qwen2/3, Gemma 1-3, OLMo
  dense_encoder,  // BERT-style encoders
};

// How a layer's routed experts are stored.
enum class ExpertStorage : std::uint8_t {
  per_expert,         // experts.E.<projection>.weight, one tensor per matrix
  fused_halves,       // Llama-4: experts.gate_up_proj [E, hidden, 2*inter], gate the first half of the last dim
  fused_interleaved,  // GPT-OSS: experts.gate_up_proj [E, hidden, 2*inter], gate the even columns; or MXFP4 _blocks
};

// How a family turns router logits into each token's experts and weights (routing.hpp).
enum class RoutingKind : std::uint8_t {
  none,             // dense families
  grouped_sigmoid,  // DeepSeek-V2/V3, Kimi-K2: sigmoid scores, correction bias for selection, group-limited top-k
  softmax_topk,     // Qwen2/3-MoE, OLMoE, Mixtral
  topk_softmax,     // GPT-OSS: top-k logits, softmax over them
  topk_sigmoid,     // Llama-4: top-k logits, sigmoid of them
};

// Whether the chosen experts' weights are divided by their sum.
enum class Renormalize : std::uint8_t {
  never,
  always,            // Mixtral
  as_config_says,    // norm_topk_prob (a default of false where it is absent)
  config_required,   // DeepSeek-V3: norm_topk_prob must be there (engines disagree on a default)
};

// The MLP's activation; phase 3's C1 and C3 measure plain SwiGLU only.
enum class Activation : std::uint8_t {
  swiglu,          // silu(gate) * up
  clamped_swiglu,  // GPT-OSS: clamped, with biases (left out of C1/C3)
  gelu,            // BERT-style: no gate
};

// Where a family's MLP tensors are, after the layer prefix and index.
struct TensorNaming {
  std::vector<std::string> layer_prefixes;  // "model.layers."; the layer index follows
  std::string mlp_module;                   // "mlp", "block_sparse_moe", "feed_forward"; "" for BERT-style layers
  std::string router;                       // "gate" or "router" (its ".weight" is the router matrix)
  std::vector<std::string> router_bias;     // "gate.e_score_correction_bias", "router.bias"
  std::string shared;                       // "shared_experts", "shared_expert"; "" when the family has none
  std::array<std::string, 3> expert_projections{"gate_proj", "up_proj", "down_proj"};  // by Projection
  ExpertStorage storage = ExpertStorage::per_expert;
  bool bert_style = false;  // intermediate.dense (up) and output.dense (down), no gate
};

// Reads the family's config.json keys into `layout` (sizes, expert counts, experts per token, the
// MoE layer rule) and returns, by layer index, whether the layer is MoE. Problems are InputErrors
// naming config.json and the key.
using ConfigRead = std::vector<bool> (*)(const layout_detail::ConfigReader& config, ModelLayout& layout);

struct FamilyTraits {
  Family family;
  const char* name;   // what moe_config.json and inspect call it: "deepseek_v3"; both dense rows are "dense"
  const char* label;  // for messages: "DeepSeek-V2/V3 and Kimi-K2"
  std::vector<std::string> model_types;    // config.json model_type values
  std::vector<std::string> architectures;  // config.json architectures values
  std::vector<std::string> gguf_architectures;  // GGUF general.architecture values (llama.cpp's names)
  TensorNaming naming;
  ConfigRead read_config;
  RoutingKind routing = RoutingKind::none;
  Renormalize renormalize = Renormalize::never;
  bool router_bias_in_logits = false;  // GPT-OSS: the router's bias is part of the logits
  Activation activation = Activation::swiglu;
};

// Every family, in the order messages list them.
const std::vector<FamilyTraits>& family_table();
const FamilyTraits& traits(Family family);
std::string_view family_name(Family family);

// The family of a config.json's model_types (text_config's and the top level's) or, failing that,
// of its architectures: the table's last row that matches; nullptr when none is known.
const FamilyTraits* find_family(const std::vector<std::string>& model_types, const std::vector<std::string>& architectures);

// The family of a GGUF file's general.architecture: the table's last row that lists it and routes
// (is MoE) exactly when the file has experts (`<arch>.expert_count` > 0) -- llama.cpp writes Mixtral
// as "llama" with experts -- else its last row that lists it; nullptr when none does.
const FamilyTraits* find_gguf_family(const std::string& architecture, bool has_experts = false);

// The families detect_layout reads, for messages and docs: "DeepSeek-V2/V3 and Kimi-K2 (...)".
std::string known_families();

}  // namespace vindex
