// moe_config.json: the detected layout as JSON (see layout_json.hpp).
#include "vindex/model/layout_json.hpp"

namespace vindex {
namespace {

using ojson = nlohmann::ordered_json;

const char* encoding_name(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::plain: return "plain";
    case WeightEncoding::fp8_block: return "fp8_block";
    case WeightEncoding::mxfp4: return "mxfp4";
    case WeightEncoding::gguf_blocks: return "gguf_blocks";
    case WeightEncoding::bitnet_packed: return "bitnet_packed";
    case WeightEncoding::gptq: return "gptq";
    case WeightEncoding::awq: return "awq";
  }
  return "?";
}

ojson matrix_json(const WeightRef& w, bool with_tensor) {
  ojson m;
  if (with_tensor) m["tensor"] = w.weight->info->name;
  m["shape"] = {w.rows, w.cols};
  m["dtype"] = stored_type_name(*w.weight->info);  // "Q4_K" for a GGUF block type
  m["encoding"] = encoding_name(w.encoding);
  m["scale"] = w.scale ? ojson(w.scale->info->name) : ojson(nullptr);
  if (w.zeros) m["zeros"] = w.zeros->info->name;
  if (w.g_idx) m["g_idx"] = w.g_idx->info->name;
  const bool fused = w.weight->info->shape.size() != 2;
  if (fused) {
    m["fused_tensor"] = w.weight->info->name;
    m["stored_transposed"] = w.slice.transposed;
    m["stride"] = {w.slice.row_stride, w.slice.col_stride};
  }
  return m;
}

ojson projections_json(const ProjectionSet& set) {
  ojson out = ojson::object();
  for (Projection p : kProjections)
    if (set[p].present()) out[projection_name(p)] = matrix_json(set[p], true);
  return out;
}

}  // namespace

ojson quantization_json(const BlockQuantization& q) {
  ojson j;
  j["method"] = q.method;
  j["format"] = q.format;
  if (q.method == "mxfp4") return j;
  if (q.method == "bitnet") {
    j["scale_tensor"] = "weight" + q.scale_suffix;
    j["value"] = "(code - 1) / weight_scale";
    return j;
  }
  if (q.packed_int()) {
    j["bits"] = q.bits;
    j["group_size"] = q.group_size;
    if (q.method == "gptq") {
      j["desc_act"] = q.desc_act;
      j["sym"] = q.sym;
    }
    j["zeros_stored_minus_one"] = q.zeros_minus_one;
    j["value"] = "(q - zero) * scale, rounded to the scales' dtype";
    return j;
  }
  j["fp8_scaling"] = fp8_scaling_name(q.scaling);
  j["weight_block_size"] = q.scaling == Fp8Scaling::block ? ojson({q.block_rows, q.block_cols}) : ojson(nullptr);
  j["scale_tensor"] = "weight" + q.scale_suffix;
  j["product"] = q.product_in_scale_dtype ? "the scale's dtype" : "float32";
  return j;
}

ojson moe_config_json(const ModelLayout& layout, const std::string& model_name) {
  ojson j;
  j["model"] = model_name;
  j["family"] = family_name(layout.family);
  j["model_type"] = layout.model_type;
  j["architectures"] = layout.architectures;
  if (!layout.gguf_architecture.empty()) j["gguf_architecture"] = layout.gguf_architecture;
  j["num_hidden_layers"] = layout.num_layers;
  j["hidden_size"] = layout.hidden_size;
  j["intermediate_size"] = layout.intermediate_size;
  j["moe_intermediate_size"] = layout.moe_intermediate_size;
  j["shared_intermediate_size"] = layout.shared_intermediate_size;
  j["n_routed_experts"] = layout.n_routed_experts;
  j["n_shared_experts"] = layout.n_shared_experts;
  j["num_experts_per_tok"] = layout.experts_per_token;
  j["moe_layer_rule"] = layout.moe_layer_rule;
  j["routing"] = layout.routing;
  if (layout.quantization) {
    j["quantization"] = quantization_json(*layout.quantization);
  } else {
    j["quantization"] = nullptr;
  }
  j["dense_layers"] = layout.dense_layers();
  j["moe_layers"] = layout.moe_layers();
  j["skipped_layers"] = layout.skipped_layers;
  j["ignored_tensors"] = layout.ignored_tensors;
  ojson layer_list = ojson::array();
  for (const LayerLayout& l : layout.layers) {
    ojson lj;
    lj["layer"] = l.index;
    lj["kind"] = layer_kind_name(l.kind);
    if (l.kind == LayerKind::dense) {
      lj["mlp"] = projections_json(l.dense);
    } else {
      lj["routed_experts"] = l.routed.size();
      lj["expert"] = l.routed.empty() ? ojson(nullptr) : projections_json(l.routed.front());
      lj["shared_expert"] = l.shared ? projections_json(*l.shared) : ojson(nullptr);
      lj["router"] = l.router.present() ? matrix_json(l.router, true) : ojson(nullptr);
      lj["router_bias"] = l.router_bias ? ojson(l.router_bias->info->name) : ojson(nullptr);
      lj["shared_expert_gate"] = l.shared_expert_gate ? ojson(l.shared_expert_gate->info->name) : ojson(nullptr);
    }
    layer_list.push_back(lj);
  }
  j["layers"] = layer_list;
  return j;
}

}  // namespace vindex
