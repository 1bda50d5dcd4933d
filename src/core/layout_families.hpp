// What each model family says in config.json about its MLP layers, and how it names their
// tensors: the per-family knowledge behind detect_layout (layout.cpp does the generic part).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "config_reader.hpp"
#include "vindex/layout.hpp"

namespace vindex::layout_detail {

// How a layer's routed experts are stored.
enum class ExpertStorage {
  per_expert,         // experts.E.<projection>.weight, one tensor per matrix
  fused_halves,       // Llama-4: experts.gate_up_proj [E, hidden, 2*inter], gate the first half of the last dim
  fused_interleaved,  // GPT-OSS: experts.gate_up_proj [E, hidden, 2*inter], gate the even columns; or MXFP4 _blocks
};

struct Naming {
  std::vector<std::string> layer_prefixes;  // "model.layers."; the layer index follows
  std::string mlp_module;                   // "mlp", "block_sparse_moe", "feed_forward"; "" for BERT-style layers
  std::string router;                       // "gate" or "router" (its ".weight" is the router matrix)
  std::vector<std::string> router_bias;     // "gate.e_score_correction_bias", "router.bias"
  std::string shared;                       // "shared_experts", "shared_expert"; "" when the family has none
  std::array<std::string, 3> expert_projections{"gate_proj", "up_proj", "down_proj"};  // by Projection
  ExpertStorage storage = ExpertStorage::per_expert;
  bool bert_style = false;  // intermediate.dense (up) and output.dense (down), no gate
};

struct FamilySpec {
  Naming naming;
  std::vector<bool> moe_layer;  // by layer index: true where config.json makes the layer MoE
};

// Fills the config-derived fields of `layout` (family, sizes, experts, MoE layers, routing,
// quantization) and returns the family's naming. An unknown architecture is an InputError that
// lists what config.json says and the known families.
FamilySpec read_family(const ConfigReader& config, ModelLayout& layout);

}  // namespace vindex::layout_detail
