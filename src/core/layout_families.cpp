// Per-family config.json readers and tensor naming (see layout_families.hpp). Each family's
// published checkpoint is named in README "Model families"; the test fixtures saved by Hugging
// Face transformers' own classes (tests/fixtures/hf) check that these names are what they write.
#include "layout_families.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/errors.hpp"

namespace vindex::layout_detail {
namespace {

using json = nlohmann::json;

const std::vector<std::string> kDecoderPrefixes{"model.layers.", "language_model.model.layers.",
                                                "model.language_model.layers."};

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

// DeepSeek-V2/V3, Kimi-K2: MoE from first_k_dense_replace on, every moe_layer_freq-th layer.
FamilySpec deepseek(const ConfigReader& c, ModelLayout& l) {
  l.family = "deepseek_v3";
  l.intermediate_size = dimension(c, "intermediate_size");
  l.n_routed_experts = c.integer("n_routed_experts", 0, 0, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "moe_intermediate_size", l.n_routed_experts ? std::nullopt : std::optional<int>(1));
  l.n_shared_experts = c.integer("n_shared_experts", 0, 0, kMaxExperts);
  l.shared_intermediate_size = l.moe_intermediate_size * static_cast<std::uint64_t>(std::max(l.n_shared_experts, 1));
  l.experts_per_token = c.integer("num_experts_per_tok", 0, 0, kMaxExperts);
  const int first_dense = c.integer("first_k_dense_replace", 0, 0, kMaxLayers);
  const int freq = c.integer("moe_layer_freq", 1, 1, kMaxLayers);
  l.moe_layer_rule = fmt::format("first_k_dense_replace={}, moe_layer_freq={}", first_dense, freq);
  FamilySpec spec;
  spec.naming = {kDecoderPrefixes, "mlp", "gate", {"gate.e_score_correction_bias"}, "shared_experts"};
  for (int i = 0; i < l.num_layers; ++i)
    spec.moe_layer.push_back(l.n_routed_experts > 0 && i >= first_dense && i % freq == 0);
  return spec;
}

// Qwen2-MoE, Qwen3-MoE: MoE where (layer + 1) % decoder_sparse_step == 0, except mlp_only_layers.
FamilySpec qwen_moe(const ConfigReader& c, ModelLayout& l, bool qwen2) {
  l.family = qwen2 ? "qwen2_moe" : "qwen3_moe";
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
  FamilySpec spec;
  spec.naming = {kDecoderPrefixes, "mlp", "gate", {}, qwen2 ? "shared_expert" : ""};
  const std::set<int> dense(mlp_only.begin(), mlp_only.end());
  for (int i = 0; i < l.num_layers; ++i) spec.moe_layer.push_back(!dense.count(i) && (i + 1) % step == 0);
  return spec;
}

// Families whose every layer is MoE with experts of width intermediate_size, counted by `experts_key`.
FamilySpec every_layer_moe(const ConfigReader& c, ModelLayout& l, const char* family, const char* experts_key,
                           Naming naming) {
  l.family = family;
  l.n_routed_experts = c.integer(experts_key, std::nullopt, 1, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "intermediate_size");
  // GPT-OSS's config names it experts_per_token (transformers adds num_experts_per_tok).
  l.experts_per_token = c.has("num_experts_per_tok") ? c.integer("num_experts_per_tok", 0, 0, kMaxExperts)
                                                      : c.integer("experts_per_token", 0, 0, kMaxExperts);
  l.moe_layer_rule = "every layer";
  FamilySpec spec;
  spec.naming = std::move(naming);
  spec.moe_layer = all_layers(l.num_layers, true);
  return spec;
}

// Mixtral: experts' w1 (gate), w3 (up), w2 (down) under block_sparse_moe.
FamilySpec mixtral(const ConfigReader& c, ModelLayout& l) {
  Naming naming{kDecoderPrefixes, "block_sparse_moe", "gate", {}, ""};
  naming.expert_projections = {"w1", "w3", "w2"};
  return every_layer_moe(c, l, "mixtral", "num_local_experts", std::move(naming));
}

// OLMoE: mlp.experts.E.{gate,up,down}_proj.
FamilySpec olmoe(const ConfigReader& c, ModelLayout& l) {
  return every_layer_moe(c, l, "olmoe", "num_experts", {kDecoderPrefixes, "mlp", "gate", {}, ""});
}

// GPT-OSS: experts fused (bf16 as transformers saves them, or MXFP4 blocks as openai/gpt-oss-*
// publish them); the router has a bias.
FamilySpec gpt_oss(const ConfigReader& c, ModelLayout& l) {
  Naming naming{kDecoderPrefixes, "mlp", "router", {"router.bias"}, ""};
  naming.storage = ExpertStorage::fused_interleaved;
  return every_layer_moe(c, l, "gpt_oss", "num_local_experts", std::move(naming));
}

// Llama-4: MoE layers from `moe_layers` or every interleave_moe_layer_step-th layer; fused experts;
// a shared expert of the experts' width; dense layers of width intermediate_size_mlp.
FamilySpec llama4(const ConfigReader& c, ModelLayout& l) {
  l.family = "llama4";
  l.n_routed_experts = c.integer("num_local_experts", std::nullopt, 1, kMaxExperts);
  l.moe_intermediate_size = dimension(c, "intermediate_size");
  l.intermediate_size = dimension(c, "intermediate_size_mlp", static_cast<int>(l.moe_intermediate_size));
  l.shared_intermediate_size = l.moe_intermediate_size;
  l.n_shared_experts = 1;
  l.experts_per_token = c.integer("num_experts_per_tok", 0, 0, kMaxExperts);
  FamilySpec spec;
  spec.naming = {kDecoderPrefixes, "feed_forward", "router", {}, "shared_expert"};
  spec.naming.storage = ExpertStorage::fused_halves;
  spec.moe_layer = all_layers(l.num_layers, false);
  if (c.has("moe_layers")) {
    const std::vector<int> moe = c.integer_list("moe_layers", 0, l.num_layers - 1);
    for (int i : moe) spec.moe_layer[static_cast<std::size_t>(i)] = true;
    l.moe_layer_rule = fmt::format("moe_layers=[{}]", fmt::join(moe, ", "));
  } else {
    const int step = c.integer("interleave_moe_layer_step", 1, 1, kMaxLayers);
    for (int i = step - 1; i < l.num_layers; i += step) spec.moe_layer[static_cast<std::size_t>(i)] = true;
    l.moe_layer_rule = fmt::format("interleave_moe_layer_step={}", step);
  }
  return spec;
}

// Dense models: one MLP per layer of width intermediate_size, named as `naming` says.
FamilySpec dense(const ConfigReader& c, ModelLayout& l, Naming naming) {
  l.family = "dense";
  l.intermediate_size = dimension(c, "intermediate_size");
  l.moe_layer_rule = "no MoE layers";
  FamilySpec spec;
  spec.naming = std::move(naming);
  spec.moe_layer = all_layers(l.num_layers, false);
  return spec;
}

// Dense decoders (Llama, Mistral, Qwen2/3, Gemma 1-3, OLMo...): mlp.{gate,up,down}_proj per layer.
FamilySpec dense_decoder(const ConfigReader& c, ModelLayout& l) {
  return dense(c, l, {kDecoderPrefixes, "mlp", "", {}, ""});
}

// BERT-style encoders: intermediate.dense (up, [inter, hidden]) and output.dense (down).
FamilySpec dense_encoder(const ConfigReader& c, ModelLayout& l) {
  Naming naming;
  naming.layer_prefixes = {"bert.encoder.layer.", "roberta.encoder.layer.", "encoder.layer."};
  naming.bert_style = true;
  return dense(c, l, std::move(naming));
}

struct KnownFamily {
  const char* label;  // for messages
  std::vector<std::string> model_types;
  std::vector<std::string> architectures;
};

const std::vector<KnownFamily>& known() {
  static const std::vector<KnownFamily> families{
      {"DeepSeek-V2/V3 and Kimi-K2", {"deepseek_v2", "deepseek_v3", "kimi_k2"}, {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"}},
      {"Qwen2-MoE", {"qwen2_moe"}, {"Qwen2MoeForCausalLM"}},
      {"Qwen3-MoE", {"qwen3_moe"}, {"Qwen3MoeForCausalLM"}},
      {"Mixtral", {"mixtral"}, {"MixtralForCausalLM"}},
      {"OLMoE", {"olmoe"}, {"OlmoeForCausalLM"}},
      {"GPT-OSS", {"gpt_oss"}, {"GptOssForCausalLM"}},
      {"Llama-4", {"llama4", "llama4_text"}, {"Llama4ForConditionalGeneration", "Llama4ForCausalLM"}},
      {"dense decoders (Llama, Mistral, Qwen2/3, Gemma, OLMo)",
       {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo", "olmo2"},
       {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM",
        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", "OlmoForCausalLM", "Olmo2ForCausalLM"}},
      {"BERT-style encoders", {"bert", "roberta", "xlm-roberta"},
       {"BertModel", "BertForMaskedLM", "BertForPreTraining", "RobertaModel", "RobertaForMaskedLM"}},
  };
  return families;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

FamilySpec read_family(const ConfigReader& top, ModelLayout& layout) {
  // Multimodal checkpoints (Llama-4, Gemma-3) keep the language model's settings in text_config.
  const ConfigReader c = top.nested_or_self("text_config");
  layout.model_type = c.string("model_type");
  if (layout.model_type.empty()) layout.model_type = top.string("model_type");
  layout.architectures = top.string_list("architectures");

  const KnownFamily* family = nullptr;
  for (const KnownFamily& f : known())
    if (contains(f.model_types, layout.model_type) || contains(f.model_types, top.string("model_type"))) family = &f;
  if (!family)
    for (const KnownFamily& f : known())
      for (const std::string& a : layout.architectures)
        if (contains(f.architectures, a)) family = &f;
  if (!family)
    throw InputError(top.file(), "",
                     fmt::format("unknown architecture: model_type '{}', architectures [{}]; the known families are {}",
                                 layout.model_type, fmt::join(layout.architectures, ", "), known_families()));

  layout.num_layers = c.integer("num_hidden_layers", std::nullopt, 1, kMaxLayers);
  layout.hidden_size = dimension(c, "hidden_size");
  copy_routing(c, layout);
  const std::string label = family->label;
  FamilySpec spec;
  if (label.starts_with("DeepSeek")) spec = deepseek(c, layout);
  else if (label == "Qwen2-MoE") spec = qwen_moe(c, layout, true);
  else if (label == "Qwen3-MoE") spec = qwen_moe(c, layout, false);
  else if (label == "Mixtral") spec = mixtral(c, layout);
  else if (label == "OLMoE") spec = olmoe(c, layout);
  else if (label == "GPT-OSS") spec = gpt_oss(c, layout);
  else if (label == "Llama-4") spec = llama4(c, layout);
  else if (label.starts_with("BERT")) spec = dense_encoder(c, layout);
  else spec = dense_decoder(c, layout);

  // Quantization as config.json declares it: fp8 with its block size (DeepSeek-V3, Kimi-K2,
  // Qwen3 FP8), or mxfp4 (GPT-OSS). The weights' own dtypes decide how each is decoded.
  const ConfigReader q = top.nested_or_self("quantization_config");
  if (top.has("quantization_config") && top.json()["quantization_config"].is_object()) {
    BlockQuantization quant;
    quant.method = q.string("quant_method");
    quant.format = q.string("fmt");
    if (q.has("weight_block_size")) {
      const std::vector<int> block = q.integer_list("weight_block_size", 1, 65536);
      if (block.size() != 2)
        throw InputError(top.file(), "", "quantization_config.weight_block_size is not two integers from 1 to 65536");
      quant.block_rows = static_cast<std::uint32_t>(block[0]);
      quant.block_cols = static_cast<std::uint32_t>(block[1]);
    }
    layout.quantization = quant;
  }
  return spec;
}

}  // namespace vindex::layout_detail

namespace vindex {

std::string known_families() {
  std::string out;
  const auto& families = layout_detail::known();
  for (std::size_t i = 0; i < families.size(); ++i) {
    if (i) out += i + 1 == families.size() ? " and " : ", ";
    out += fmt::format("{} (model_type {})", families[i].label, fmt::join(families[i].model_types, ", "));
  }
  return out;
}

}  // namespace vindex
