// Per-family config.json readers (see family_config.hpp). Each family's published checkpoint is
// named in README "Model families"; the test fixtures saved by Hugging Face transformers' own
// classes (tests/fixtures/hf) check that these readers agree with what transformers writes.
#include "family_config.hpp"
#include "quantization_config.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/base/errors.hpp"

namespace vindex::layout_detail {
namespace {

using json = nlohmann::json;

std::uint64_t dimension(const ConfigReader& c, const char* key, std::optional<int> fallback = std::nullopt) {
  return static_cast<std::uint64_t>(c.integer(key, fallback, 1, kMaxDimension));
}

// The settings that decide routing, copied to moe_config.json as the config gives them.
void copy_routing(const ConfigReader& c, ModelLayout& layout) {
  layout.routing = json::object();
  for (const char* key : {"num_experts_per_tok", "experts_per_token", "scoring_func", "topk_method", "n_group",
                          "topk_group", "routed_scaling_factor", "norm_topk_prob", "router_aux_loss_coef",
                          "swiglu_limit"})
    if (c.has(key)) layout.routing[key] = c.json()[key];
}

std::vector<bool> all_layers(int n, bool moe) { return std::vector<bool>(static_cast<std::size_t>(n), moe); }

// Qwen2-MoE, Qwen3-MoE: MoE where (layer + 1) % decoder_sparse_step == 0, except mlp_only_layers.
std::vector<bool> qwen_moe(const ConfigReader& c, ModelLayout& l, bool qwen2) {
  l.intermediate_size = dimension(c, "intermediate_size");
  l.n_routed_experts = c.integer("num_experts", std::nullopt, 1, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "moe_intermediate_size");
  l.experts_per_token = c.integer("num_experts_per_tok", 0, 0, kMaxExperts);
  if (qwen2 && c.has("shared_expert_intermediate_size")) {
    l.shared_intermediate_size = dimension(c, "shared_expert_intermediate_size");
    l.n_shared_experts = 1;
  }
  const int step = c.integer("decoder_sparse_step", 1, 1, kMaxLayers);
  const std::vector<int> mlp_only = c.integer_list("mlp_only_layers", 0, kMaxLayers);
  l.moe_layer_rule = fmt::format("decoder_sparse_step={}, mlp_only_layers=[{}]", step, fmt::join(mlp_only, ", "));
  const std::set<int> dense(mlp_only.begin(), mlp_only.end());
  std::vector<bool> moe;
  for (int i = 0; i < l.num_layers; ++i) moe.push_back(!dense.count(i) && (i + 1) % step == 0);
  return moe;
}

// Families whose every layer is MoE with experts of width intermediate_size, counted by `experts_key`.
std::vector<bool> every_layer_moe(const ConfigReader& c, ModelLayout& l, const char* experts_key) {
  l.n_routed_experts = c.integer(experts_key, std::nullopt, 1, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "intermediate_size");
  // GPT-OSS's config names it experts_per_token (transformers adds num_experts_per_tok).
  l.experts_per_token = c.has("num_experts_per_tok") ? c.integer("num_experts_per_tok", 0, 0, kMaxExperts)
                                                      : c.integer("experts_per_token", 0, 0, kMaxExperts);
  l.moe_layer_rule = "every layer";
  return all_layers(l.num_layers, true);
}

}  // namespace

// DeepSeek-V2/V3, Kimi-K2: MoE from first_k_dense_replace on, every moe_layer_freq-th layer.
std::vector<bool> read_deepseek_config(const ConfigReader& c, ModelLayout& l) {
  l.intermediate_size = dimension(c, "intermediate_size");
  l.n_routed_experts = c.integer("n_routed_experts", 0, 0, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "moe_intermediate_size", l.n_routed_experts ? std::nullopt : std::optional<int>(1));
  l.n_shared_experts = c.integer("n_shared_experts", 0, 0, kMaxExperts);
  l.shared_intermediate_size = l.moe_intermediate_size * static_cast<std::uint64_t>(std::max(l.n_shared_experts, 1));
  l.experts_per_token = c.integer("num_experts_per_tok", 0, 0, kMaxExperts);
  const int first_dense = c.integer("first_k_dense_replace", 0, 0, kMaxLayers);
  const int freq = c.integer("moe_layer_freq", 1, 1, kMaxLayers);
  l.moe_layer_rule = fmt::format("first_k_dense_replace={}, moe_layer_freq={}", first_dense, freq);
  std::vector<bool> moe;
  for (int i = 0; i < l.num_layers; ++i) moe.push_back(l.n_routed_experts > 0 && i >= first_dense && i % freq == 0);
  return moe;
}

std::vector<bool> read_qwen2_moe_config(const ConfigReader& c, ModelLayout& l) { return qwen_moe(c, l, true); }
std::vector<bool> read_qwen3_moe_config(const ConfigReader& c, ModelLayout& l) { return qwen_moe(c, l, false); }
std::vector<bool> read_mixtral_config(const ConfigReader& c, ModelLayout& l) {
  return every_layer_moe(c, l, "num_local_experts");
}
std::vector<bool> read_olmoe_config(const ConfigReader& c, ModelLayout& l) { return every_layer_moe(c, l, "num_experts"); }
std::vector<bool> read_gpt_oss_config(const ConfigReader& c, ModelLayout& l) {
  return every_layer_moe(c, l, "num_local_experts");
}

// Llama-4: MoE layers from `moe_layers` or every interleave_moe_layer_step-th layer; a shared
// expert of the experts' width; dense layers of width intermediate_size_mlp.
std::vector<bool> read_llama4_config(const ConfigReader& c, ModelLayout& l) {
  l.n_routed_experts = c.integer("num_local_experts", std::nullopt, 1, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "intermediate_size");
  l.intermediate_size = dimension(c, "intermediate_size_mlp", static_cast<int>(l.moe_intermediate_size));
  l.shared_intermediate_size = l.moe_intermediate_size;
  l.n_shared_experts = 1;
  l.experts_per_token = c.integer("num_experts_per_tok", 0, 0, kMaxExperts);
  std::vector<bool> moe = all_layers(l.num_layers, false);
  if (c.has("moe_layers")) {
    const std::vector<int> listed = c.integer_list("moe_layers", 0, l.num_layers - 1);
    for (int i : listed) moe[static_cast<std::size_t>(i)] = true;
    l.moe_layer_rule = fmt::format("moe_layers=[{}]", fmt::join(listed, ", "));
  } else {
    const int step = c.integer("interleave_moe_layer_step", 1, 1, kMaxLayers);
    for (int i = step - 1; i < l.num_layers; i += step) moe[static_cast<std::size_t>(i)] = true;
    l.moe_layer_rule = fmt::format("interleave_moe_layer_step={}", step);
  }
  return moe;
}

// Dense models: one MLP per layer of width intermediate_size.
std::vector<bool> read_dense_config(const ConfigReader& c, ModelLayout& l) {
  l.intermediate_size = dimension(c, "intermediate_size");
  l.moe_layer_rule = "no MoE layers";
  return all_layers(l.num_layers, false);
}

// llama.cpp's keys (gguf-py's constants.py, Keys.LLM; each after "<arch>.") -> transformers' names
// for them; the expert count goes under every family's name for it (each reader reads its own).
const std::pair<const char*, std::vector<const char*>> kGgufKeys[] = {
      {"block_count", {"num_hidden_layers"}},
      {"embedding_length", {"hidden_size"}},
      {"feed_forward_length", {"intermediate_size"}},
      {"expert_count", {"num_experts", "n_routed_experts", "num_local_experts"}},
      {"expert_used_count", {"num_experts_per_tok"}},
      {"expert_feed_forward_length", {"moe_intermediate_size"}},
      {"expert_shared_feed_forward_length", {"shared_expert_intermediate_size"}},
      {"expert_shared_count", {"n_shared_experts"}},
      {"leading_dense_block_count", {"first_k_dense_replace"}},
      {"expert_weights_norm", {"norm_topk_prob"}},
      {"expert_weights_scale", {"routed_scaling_factor"}},
      {"expert_group_count", {"n_group"}},
      {"expert_group_used_count", {"topk_group"}},
  };

json gguf_config(const json& metadata, const std::string& file) {
  const auto arch_it = metadata.find("general.architecture");
  if (arch_it == metadata.end() || !arch_it->is_string())
    throw InputError(file, "general.architecture", "is missing or not a string: the GGUF file does not say its architecture");
  const std::string arch = arch_it->get<std::string>();
  std::vector<std::string> known;
  for (const FamilyTraits& f : family_table())
    for (const std::string& a : f.gguf_architectures)
      if (std::find(known.begin(), known.end(), a) == known.end()) known.push_back(a);
  const auto experts = metadata.find(arch + ".expert_count");
  const bool has_experts = experts != metadata.end() && experts->is_number_integer() && experts->get<std::int64_t>() > 0;
  const FamilyTraits* family = find_gguf_family(arch, has_experts);
  if (!family)
    throw InputError(file, "general.architecture",
                     fmt::format("'{}' is not a known architecture; the GGUF architectures read are {}", arch,
                                 fmt::join(known, ", ")));
  json c = json::object();
  c["model_type"] = family->model_types.front();
  c["gguf_architecture"] = arch;
  for (const auto& [gguf_key, names] : kGgufKeys) {
    const auto it = metadata.find(arch + "." + gguf_key);
    if (it == metadata.end()) continue;
    for (const char* name : names) c[name] = *it;
  }
  // llama_expert_gating_func_type: 1 softmax, 2 sigmoid.
  const auto gating = metadata.find(arch + ".expert_gating_func");
  if (gating != metadata.end() && gating->is_number_integer()) {
    const auto g = gating->get<std::int64_t>();
    if (g == 1) c["scoring_func"] = "softmax";
    if (g == 2) c["scoring_func"] = "sigmoid";
  }
  return c;
}

json gguf_key_names(const json& metadata) {
  json names = json::object();
  const auto arch = metadata.find("general.architecture");
  if (arch == metadata.end() || !arch->is_string()) return names;
  for (const auto& [gguf_key, hf_names] : kGgufKeys)
    for (const char* name : hf_names) names[name] = arch->get<std::string>() + "." + gguf_key;
  names["scoring_func"] = arch->get<std::string>() + ".expert_gating_func";
  return names;
}

std::vector<bool> read_model_config(const ConfigReader& top, ModelLayout& layout) {
  // Multimodal checkpoints (Llama-4, Gemma-3) keep the language model's settings in text_config.
  const ConfigReader c = top.nested_or_self("text_config");
  layout.model_type = c.string("model_type");
  if (layout.model_type.empty()) layout.model_type = top.string("model_type");
  layout.architectures = top.string_list("architectures");
  layout.gguf_architecture = top.string("gguf_architecture");  // set by the GGUF metadata reader only
  layout.hidden_act = c.string("hidden_act");
  if (layout.hidden_act.empty()) layout.hidden_act = c.string("hidden_activation");  // Gemma
  const FamilyTraits* family = find_family({layout.model_type, top.string("model_type")}, layout.architectures);
  if (!family)
    throw InputError(top.file(), "",
                     fmt::format("unknown architecture: model_type '{}', architectures [{}]; the known families are {}",
                                 layout.model_type, fmt::join(layout.architectures, ", "), known_families()));
  layout.family = family->family;
  layout.num_layers = c.integer("num_hidden_layers", std::nullopt, 1, kMaxLayers);
  layout.hidden_size = dimension(c, "hidden_size");
  copy_routing(c, layout);
  std::vector<bool> moe_layer = family->read_config(c, layout);

  // Quantization as config.json declares it (quantization_config.cpp says which are read); the
  // weights' own dtypes decide how each is decoded.
  layout.quantization = read_quantization_config(top);
  return moe_layer;
}

}  // namespace vindex::layout_detail
