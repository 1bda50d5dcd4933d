// How each family's config.json says how wide its MLPs are, how many experts it has and which
// layers are MoE: the readers the family table (vindex/model/family.hpp) points to, and the reading of
// config.json that every family shares (architecture, sizes, routing settings, quantization).
#pragma once

#include <vector>

#include "config_reader.hpp"
#include "vindex/model/family.hpp"
#include "vindex/model/layout.hpp"

namespace vindex::layout_detail {

// Fills the config-derived fields of `layout` (family, sizes, experts, MoE layers, routing,
// quantization) and returns, by layer index, whether the layer is MoE. An unknown architecture is
// an InputError that lists what config.json says and the known families.
std::vector<bool> read_model_config(const ConfigReader& config, ModelLayout& layout);

// A GGUF file's metadata (Checkpoint::config(): its scalar values by GGUF key) as the config.json
// its family's reader reads: general.architecture picks the family's row (FamilyTraits::
// gguf_architectures) and model_type; "<arch>.block_count", "<arch>.embedding_length",
// "<arch>.feed_forward_length", "<arch>.expert_count", ... become num_hidden_layers, hidden_size,
// intermediate_size, the expert count under each family's name for it, ... An unknown architecture
// is an InputError naming `file`.
nlohmann::json gguf_config(const nlohmann::json& metadata, const std::string& file);
// The GGUF key each config.json key of gguf_config stands for ({"hidden_size":
// "llama.embedding_length", ...}), for messages (ConfigReader::set_key_names).
nlohmann::json gguf_key_names(const nlohmann::json& metadata);

// The per-family readers (FamilyTraits::read_config).
std::vector<bool> read_deepseek_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_qwen2_moe_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_qwen3_moe_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_mixtral_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_olmoe_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_gpt_oss_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_llama4_config(const ConfigReader& c, ModelLayout& l);
std::vector<bool> read_dense_config(const ConfigReader& c, ModelLayout& l);

}  // namespace vindex::layout_detail
