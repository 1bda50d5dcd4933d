// The family table (vindex/model/family.hpp): one row per family.
#include "vindex/model/family.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "family_config.hpp"
#include "vindex/base/errors.hpp"

namespace vindex {
namespace {

using namespace layout_detail;

const std::vector<std::string> kDecoderPrefixes{"model.layers.", "language_model.model.layers.",
                                                "model.language_model.layers."};

TensorNaming decoder(std::string mlp, std::string router, std::vector<std::string> router_bias, std::string shared,
                     ExpertStorage storage = ExpertStorage::per_expert) {
  TensorNaming n{kDecoderPrefixes, std::move(mlp), std::move(router), std::move(router_bias), std::move(shared)};
  n.storage = storage;
  return n;
}

// Mixtral: experts' w1 (gate), w3 (up), w2 (down) under block_sparse_moe.
TensorNaming mixtral_naming() {
  TensorNaming n = decoder("block_sparse_moe", "gate", {}, "");
  n.expert_projections = {"w1", "w3", "w2"};
  return n;
}

// BERT-style encoders: intermediate.dense (up, [inter, hidden]) and output.dense (down).
TensorNaming encoder_naming() {
  TensorNaming n;
  n.layer_prefixes = {"bert.encoder.layer.", "roberta.encoder.layer.", "encoder.layer."};
  n.bert_style = true;
  return n;
}

std::vector<FamilyTraits> make_table() {
  using R = RoutingKind;
  using N = Renormalize;
  return {
      {Family::deepseek_v3, "deepseek_v3", "DeepSeek-V2/V3 and Kimi-K2", {"deepseek_v2", "deepseek_v3", "kimi_k2"},
       {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"}, {"deepseek2"},
       decoder("mlp", "gate", {"gate.e_score_correction_bias"}, "shared_experts"), read_deepseek_config,
       R::grouped_sigmoid, N::config_required},
      {Family::qwen2_moe, "qwen2_moe", "Qwen2-MoE", {"qwen2_moe"}, {"Qwen2MoeForCausalLM"}, {"qwen2moe"},
       decoder("mlp", "gate", {}, "shared_expert"), read_qwen2_moe_config, R::softmax_topk, N::as_config_says},
      {Family::qwen3_moe, "qwen3_moe", "Qwen3-MoE", {"qwen3_moe"}, {"Qwen3MoeForCausalLM"}, {"qwen3moe"},
       decoder("mlp", "gate", {}, ""), read_qwen3_moe_config, R::softmax_topk, N::as_config_says},
      {Family::mixtral, "mixtral", "Mixtral", {"mixtral"}, {"MixtralForCausalLM"}, {"llama"}, mixtral_naming(),
       read_mixtral_config, R::softmax_topk, N::always},
      {Family::olmoe, "olmoe", "OLMoE", {"olmoe"}, {"OlmoeForCausalLM"}, {"olmoe"}, decoder("mlp", "gate", {}, ""),
       read_olmoe_config, R::softmax_topk, N::as_config_says},
      // Experts fused (bf16 as transformers saves them, or MXFP4 blocks as openai/gpt-oss-* publish
      // them); the router has a bias, part of the logits.
      {Family::gpt_oss, "gpt_oss", "GPT-OSS", {"gpt_oss"}, {"GptOssForCausalLM"}, {"gpt-oss"},
       decoder("mlp", "router", {"router.bias"}, "", ExpertStorage::fused_interleaved), read_gpt_oss_config,
       R::topk_softmax, N::never, true, Activation::clamped_swiglu},
      {Family::llama4, "llama4", "Llama-4", {"llama4", "llama4_text"},
       {"Llama4ForConditionalGeneration", "Llama4ForCausalLM"}, {"llama4"},
       decoder("feed_forward", "router", {}, "shared_expert", ExpertStorage::fused_halves), read_llama4_config,
       R::topk_sigmoid, N::never},
      {Family::dense_decoder, "dense", "dense decoders (Llama, Mistral, Qwen2/3, Gemma, OLMo)",
       {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo", "olmo2", "bitnet"},
       {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM",
        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", "OlmoForCausalLM",
        "Olmo2ForCausalLM", "BitNetForCausalLM"},
       {"llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "olmo", "olmo2", "bitnet", "bitnet-b1.58", "bitnet-25"},
       decoder("mlp", "", {}, ""), read_dense_config},
      {Family::dense_encoder, "dense", "BERT-style encoders", {"bert", "roberta", "xlm-roberta"},
       {"BertModel", "BertForMaskedLM", "BertForPreTraining", "RobertaModel", "RobertaForMaskedLM"}, {"bert"},
       encoder_naming(),
       read_dense_config, R::none, N::never, false, Activation::gelu},
  };
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

const std::vector<FamilyTraits>& family_table() {
  static const std::vector<FamilyTraits> table = [] {
    std::vector<FamilyTraits> rows = make_table();
    for (std::size_t i = 0; i < rows.size(); ++i) VINDEX_ASSERT(static_cast<std::size_t>(rows[i].family) == i);
    return rows;
  }();
  return table;
}

const FamilyTraits& traits(Family family) { return family_table().at(static_cast<std::size_t>(family)); }

std::string_view family_name(Family family) { return traits(family).name; }

const FamilyTraits* find_family(const std::vector<std::string>& model_types, const std::vector<std::string>& architectures) {
  // The table's last row that matches any model_type; failing that, any architecture.
  const FamilyTraits* found = nullptr;
  for (const FamilyTraits& f : family_table())
    for (const std::string& type : model_types)
      if (contains(f.model_types, type)) found = &f;
  if (found) return found;
  for (const FamilyTraits& f : family_table())
    for (const std::string& a : architectures)
      if (contains(f.architectures, a)) found = &f;
  return found;
}

const FamilyTraits* find_gguf_family(const std::string& architecture, bool has_experts) {
  const FamilyTraits* found = nullptr;
  const FamilyTraits* matching = nullptr;
  for (const FamilyTraits& f : family_table()) {
    if (!contains(f.gguf_architectures, architecture)) continue;
    found = &f;
    if ((f.routing != RoutingKind::none) == has_experts) matching = &f;
  }
  return matching ? matching : found;
}

std::string known_families() {
  std::string out;
  const auto& families = family_table();
  for (std::size_t i = 0; i < families.size(); ++i) {
    if (i) out += i + 1 == families.size() ? " and " : ", ";
    out += fmt::format("{} (model_type {})", families[i].label, fmt::join(families[i].model_types, ", "));
  }
  return out;
}

}  // namespace vindex
