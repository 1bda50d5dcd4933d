// The MoE layout of a checkpoint: which layers are dense MLPs and which are MoE, where every
// expert's projection matrices and the router live, and how they are quantized. Detected from
// config.json and the tensor names; everything else (attention, norms, embeddings) is ignored.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/checkpoint.hpp"

namespace vindex {

enum class LayerKind : std::uint8_t { dense, moe };
// What a matrix belongs to: the dense MLP of a layer, a routed expert, or the shared expert(s).
enum class MatrixRole : std::uint8_t { dense, routed, shared };
enum class Projection : std::uint8_t { gate, up, down };
inline constexpr std::array<Projection, 3> kProjections{Projection::gate, Projection::up, Projection::down};

const char* layer_kind_name(LayerKind kind);
const char* projection_name(Projection proj);  // "gate_proj", "up_proj", "down_proj"

// One stored weight matrix and, for block-quantized weights, its scale tensor.
struct WeightRef {
  const TensorRecord* weight = nullptr;
  const TensorRecord* scale = nullptr;  // "<name>_scale_inv" (multiplies the decoded values)
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  bool present() const { return weight != nullptr; }
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
  const TensorRecord* router = nullptr;       // mlp.gate.weight [experts, hidden]
  const TensorRecord* router_bias = nullptr;  // mlp.gate.e_score_correction_bias [experts]
};

struct BlockQuantization {
  std::string method;  // quantization_config.quant_method, e.g. "fp8"
  std::string format;  // quantization_config.fmt, e.g. "e4m3"
  std::uint32_t block_rows = 128;
  std::uint32_t block_cols = 128;
};

struct ModelLayout {
  std::string family;      // "deepseek_v3"
  std::string model_type;  // config.json model_type
  std::vector<std::string> architectures;
  int num_layers = 0;
  std::uint64_t hidden_size = 0;
  std::uint64_t intermediate_size = 0;
  std::uint64_t moe_intermediate_size = 0;
  int n_routed_experts = 0;
  int n_shared_experts = 0;
  int experts_per_token = 0;
  int first_k_dense_replace = 0;
  int moe_layer_freq = 1;
  std::optional<BlockQuantization> quantization;
  std::vector<LayerLayout> layers;  // indexed by layer
  std::vector<int> skipped_layers;  // tensors of layers past num_hidden_layers (MTP modules)
  std::size_t ignored_tensors = 0;  // attention, norms, embeddings...
  nlohmann::json routing;           // routing parameters copied from config.json

  std::vector<int> dense_layers() const;
  std::vector<int> moe_layers() const;
  // The content of moe_config.json.
  nlohmann::ordered_json to_json(const std::string& model_name) const;
};

// Detects the layout. Unknown architectures, missing or misshapen expert tensors, missing block
// scales and contradictions with config.json are InputErrors naming the file and tensor.
ModelLayout detect_layout(const Checkpoint& checkpoint);

}  // namespace vindex
