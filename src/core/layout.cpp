// Layout detection for the DeepSeek-V2/V3 family (DeepSeek-V3, Kimi-K2): tensor names of the form
// model.layers.L.mlp.{experts.E.,shared_experts.,}{gate,up,down}_proj.weight[_scale_inv] and the
// router mlp.gate.{weight,e_score_correction_bias}; config.json says which layers are MoE.
#include "vindex/layout.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/errors.hpp"
#include "vindex/json_file.hpp"

namespace vindex {
namespace {

using json = nlohmann::json;

constexpr std::string_view kLayerPrefix = "model.layers.";
constexpr std::string_view kScaleSuffix = "_scale_inv";

// A string value of config.json; "" when absent.
std::string config_string(const json& config, const std::string& file, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return "";
  if (!config[key].is_string())
    throw InputError(file, "", fmt::format("'{}' is {}, expected a string", key, describe_json_value(config[key])));
  return config[key].get<std::string>();
}

bool is_deepseek_family(const json& config, const std::string& file) {
  const std::string model_type = config_string(config, file, "model_type");
  if (model_type == "deepseek_v3" || model_type == "deepseek_v2" || model_type == "kimi_k2") return true;
  if (config.contains("architectures") && config["architectures"].is_array())
    for (const auto& a : config["architectures"])
      if (a == "DeepseekV3ForCausalLM" || a == "DeepseekV2ForCausalLM") return true;
  return false;
}

// Reads an integer in [lo, hi] from config.json; `fallback` when absent (nullopt: required).
// The bounds keep hostile values from turning into huge allocations or silent truncation.
int config_int(const json& config, const std::string& file, const char* key, std::optional<int> fallback, int lo,
               int hi) {
  if (!config.contains(key) || config[key].is_null()) {
    if (fallback) return *fallback;
    throw InputError(file, "", fmt::format("has no '{}', which the MoE layout needs", key));
  }
  const json& v = config[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi)
    throw InputError(file, "", fmt::format("'{}' is {}, expected an integer from {} to {}", key, describe_json_value(v), lo, hi));
  return static_cast<int>(v.get<std::int64_t>());
}

constexpr int kMaxLayers = 100'000;
constexpr int kMaxExperts = 1'000'000;
constexpr int kMaxDimension = 1 << 30;

// Parses a decimal index with no sign, leading zeros or trailing characters.
std::optional<int> parse_index(std::string_view text) {
  if (text.empty() || text.size() > 9 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<Projection> parse_projection(std::string_view text) {
  if (text == "gate_proj") return Projection::gate;
  if (text == "up_proj") return Projection::up;
  if (text == "down_proj") return Projection::down;
  return std::nullopt;
}

// Splits "a.b.c" at the first dot: returns "a" and leaves "b.c" in `rest`.
std::string_view take_component(std::string_view& rest) {
  const auto dot = rest.find('.');
  const std::string_view head = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  return head;
}

enum class MlpTensor { none, dense, routed, shared, router, router_bias };

struct ParsedMlpName {
  MlpTensor what = MlpTensor::none;
  int expert = -1;
  Projection proj = Projection::down;
};

// Parses the part after "model.layers.L.mlp.".
ParsedMlpName parse_mlp_name(std::string_view rest) {
  ParsedMlpName parsed;
  if (rest == "gate.weight") return {MlpTensor::router, -1, Projection::down};
  if (rest == "gate.e_score_correction_bias") return {MlpTensor::router_bias, -1, Projection::down};
  std::string_view head = take_component(rest);
  if (head == "experts") {
    const auto expert = parse_index(take_component(rest));
    if (!expert) return parsed;
    parsed.expert = *expert;
    parsed.what = MlpTensor::routed;
    head = take_component(rest);
  } else if (head == "shared_experts") {
    parsed.what = MlpTensor::shared;
    head = take_component(rest);
  } else {
    parsed.what = MlpTensor::dense;
  }
  const auto proj = parse_projection(head);
  if (!proj || rest != "weight") return {};
  parsed.proj = *proj;
  return parsed;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

class LayoutBuilder {
 public:
  LayoutBuilder(const Checkpoint& ckpt, ModelLayout& layout) : ckpt_(ckpt), layout_(layout) {}

  // Attaches and checks the weight (and its block scale) of one matrix.
  WeightRef weight_ref(const TensorRecord& record, std::uint64_t want_rows, std::uint64_t want_cols,
                       const char* what) const {
    const TensorInfo& info = *record.info;
    const std::string& file = ckpt_.shards()[record.shard].path.string();
    if (info.shape.size() != 2)
      throw InputError(file, info.name, fmt::format("{} weight has shape {}, expected a matrix", what, shape_text(info.shape)));
    if (info.shape[0] != want_rows || info.shape[1] != want_cols)
      throw InputError(file, info.name,
                       fmt::format("shape {} disagrees with config.json, which gives [{}, {}] for a {} matrix",
                                   shape_text(info.shape), want_rows, want_cols, what));
    if (!is_weight_dtype(info.dtype))
      throw InputError(file, info.name,
                       fmt::format("dtype {} is not a supported weight type (F8_E4M3 with block scales, BF16, F16, F32)",
                                   dtype_name(info.dtype)));
    WeightRef ref{&record, nullptr, want_rows, want_cols};
    if (info.dtype == DType::F8_E4M3) ref.scale = &scale_for(record, want_rows, want_cols);
    return ref;
  }

 private:
  const TensorRecord& scale_for(const TensorRecord& weight, std::uint64_t rows, std::uint64_t cols) const {
    const std::string scale_name = weight.info->name + std::string(kScaleSuffix);
    const std::string& weight_file = ckpt_.shards()[weight.shard].path.string();
    const TensorRecord* scale = ckpt_.find(scale_name);
    if (!scale)
      throw InputError(weight_file, weight.info->name,
                       fmt::format("F8_E4M3 weight has no block scale tensor '{}'", scale_name));
    const std::uint32_t br = layout_.quantization ? layout_.quantization->block_rows : 128;
    const std::uint32_t bc = layout_.quantization ? layout_.quantization->block_cols : 128;
    const TensorInfo& info = *scale->info;
    const std::string& file = ckpt_.shards()[scale->shard].path.string();
    if (info.dtype != DType::F32 && info.dtype != DType::BF16 && info.dtype != DType::F16)
      throw InputError(file, info.name, fmt::format("block scale dtype {} is not F32, BF16 or F16", dtype_name(info.dtype)));
    const std::vector<std::uint64_t> want{ceil_div(rows, br), ceil_div(cols, bc)};
    if (info.shape != want)
      throw InputError(file, info.name,
                       fmt::format("block scale shape {} does not match {} for a [{}, {}] weight in {}x{} blocks",
                                   shape_text(info.shape), shape_text(want), rows, cols, br, bc));
    return *scale;
  }

  const Checkpoint& ckpt_;
  ModelLayout& layout_;
};

void read_config(const Checkpoint& ckpt, ModelLayout& layout) {
  const json& config = ckpt.config();
  const std::string file = ckpt.config_path().string();
  layout.model_type = config_string(config, file, "model_type");
  if (config.contains("architectures") && config["architectures"].is_array())
    for (const auto& a : config["architectures"])
      if (a.is_string()) layout.architectures.push_back(a.get<std::string>());
  if (!is_deepseek_family(config, file))
    throw InputError(file, "",
                     fmt::format("unknown architecture: model_type '{}', architectures [{}]; the known MoE families are "
                                 "DeepSeek-V2/V3 and Kimi-K2 (model_type deepseek_v2, deepseek_v3, kimi_k2)",
                                 layout.model_type, fmt::join(layout.architectures, ", ")));
  layout.family = "deepseek_v3";
  layout.num_layers = config_int(config, file, "num_hidden_layers", std::nullopt, 1, kMaxLayers);
  layout.hidden_size = static_cast<std::uint64_t>(config_int(config, file, "hidden_size", std::nullopt, 1, kMaxDimension));
  layout.intermediate_size =
      static_cast<std::uint64_t>(config_int(config, file, "intermediate_size", std::nullopt, 1, kMaxDimension));
  layout.n_routed_experts = config_int(config, file, "n_routed_experts", 0, 0, kMaxExperts);
  // Needed only when there are routed experts; 1 stands in otherwise and is never used.
  layout.moe_intermediate_size = static_cast<std::uint64_t>(config_int(
      config, file, "moe_intermediate_size", layout.n_routed_experts ? std::nullopt : std::optional<int>(1), 1, kMaxDimension));
  layout.n_shared_experts = config_int(config, file, "n_shared_experts", 0, 0, kMaxExperts);
  layout.experts_per_token = config_int(config, file, "num_experts_per_tok", 0, 0, kMaxExperts);
  layout.first_k_dense_replace = config_int(config, file, "first_k_dense_replace", 0, 0, kMaxLayers);
  layout.moe_layer_freq = config_int(config, file, "moe_layer_freq", 1, 1, kMaxLayers);

  if (config.contains("quantization_config") && config["quantization_config"].is_object()) {
    const json& q = config["quantization_config"];
    BlockQuantization quant;
    quant.method = config_string(q, file, "quant_method");
    quant.format = config_string(q, file, "fmt");
    if (q.contains("weight_block_size")) {
      const json& block = q["weight_block_size"];
      if (!block.is_array() || block.size() != 2 || !block[0].is_number_unsigned() || !block[1].is_number_unsigned() ||
          block[0].get<std::uint64_t>() == 0 || block[1].get<std::uint64_t>() == 0 ||
          block[0].get<std::uint64_t>() > 65536 || block[1].get<std::uint64_t>() > 65536)
        throw InputError(file, "", fmt::format("quantization_config.weight_block_size {} is not two integers from 1 to 65536",
                                                           describe_json_value(block)));
      quant.block_rows = block[0].get<std::uint32_t>();
      quant.block_cols = block[1].get<std::uint32_t>();
    }
    layout.quantization = quant;
  }
  layout.routing = json::object();
  for (const char* key : {"num_experts_per_tok", "scoring_func", "topk_method", "n_group", "topk_group",
                          "routed_scaling_factor", "norm_topk_prob"})
    if (config.contains(key)) layout.routing[key] = config[key];
}

}  // namespace

const char* layer_kind_name(LayerKind kind) { return kind == LayerKind::dense ? "dense" : "moe"; }

const char* projection_name(Projection proj) {
  switch (proj) {
    case Projection::gate: return "gate_proj";
    case Projection::up: return "up_proj";
    case Projection::down: return "down_proj";
  }
  return "?";
}

std::vector<int> ModelLayout::dense_layers() const {
  std::vector<int> out;
  for (const auto& l : layers)
    if (l.kind == LayerKind::dense) out.push_back(l.index);
  return out;
}

std::vector<int> ModelLayout::moe_layers() const {
  std::vector<int> out;
  for (const auto& l : layers)
    if (l.kind == LayerKind::moe) out.push_back(l.index);
  return out;
}

ModelLayout detect_layout(const Checkpoint& ckpt) {
  ModelLayout layout;
  read_config(ckpt, layout);
  const std::string listing = ckpt.listing_path().string();
  const auto moe_by_config = [&](int layer) {
    return layout.n_routed_experts > 0 && layer >= layout.first_k_dense_replace && layer % layout.moe_layer_freq == 0;
  };

  // Gather the MLP tensors of each layer by name.
  struct Found {
    std::map<Projection, const TensorRecord*> dense, shared;
    std::map<std::pair<int, Projection>, const TensorRecord*> routed;
    const TensorRecord* router = nullptr;
    const TensorRecord* router_bias = nullptr;
  };
  std::vector<Found> found(static_cast<std::size_t>(layout.num_layers));
  std::set<int> skipped;
  for (const std::string& name : ckpt.tensor_names()) {
    std::string_view rest = name;
    if (!rest.starts_with(kLayerPrefix) || name.ends_with(kScaleSuffix)) {
      if (!name.ends_with(kScaleSuffix)) ++layout.ignored_tensors;
      continue;
    }
    rest.remove_prefix(kLayerPrefix.size());
    const auto layer = parse_index(take_component(rest));
    if (!layer) {
      ++layout.ignored_tensors;
      continue;
    }
    if (*layer >= layout.num_layers) {  // e.g. DeepSeek-V3's multi-token-prediction layer
      skipped.insert(*layer);
      continue;
    }
    if (take_component(rest) != "mlp") {
      ++layout.ignored_tensors;
      continue;
    }
    const ParsedMlpName parsed = parse_mlp_name(rest);
    const TensorRecord* record = ckpt.find(name);
    Found& f = found[static_cast<std::size_t>(*layer)];
    switch (parsed.what) {
      case MlpTensor::dense: f.dense[parsed.proj] = record; break;
      case MlpTensor::shared: f.shared[parsed.proj] = record; break;
      case MlpTensor::routed: f.routed[{parsed.expert, parsed.proj}] = record; break;
      case MlpTensor::router: f.router = record; break;
      case MlpTensor::router_bias: f.router_bias = record; break;
      case MlpTensor::none: ++layout.ignored_tensors; break;
    }
  }
  layout.skipped_layers.assign(skipped.begin(), skipped.end());

  const LayoutBuilder builder(ckpt, layout);
  const auto file_of = [&](const TensorRecord* r) { return ckpt.shards()[r->shard].path.string(); };
  const std::uint64_t H = layout.hidden_size;
  for (int L = 0; L < layout.num_layers; ++L) {
    Found& f = found[static_cast<std::size_t>(L)];
    LayerLayout layer;
    layer.index = L;
    layer.kind = moe_by_config(L) ? LayerKind::moe : LayerKind::dense;
    const auto expected = [&](const std::string& tensor, const std::string& why) {
      return InputError(listing, tensor, fmt::format("is missing: {}", why));
    };
    if (layer.kind == LayerKind::dense) {
      if (!f.routed.empty())
        throw InputError(file_of(f.routed.begin()->second), f.routed.begin()->second->info->name,
                         fmt::format("layer {} has routed experts, but config.json makes it a dense MLP "
                                     "(first_k_dense_replace={}, moe_layer_freq={})",
                                     L, layout.first_k_dense_replace, layout.moe_layer_freq));
      if (!f.dense.count(Projection::down))
        throw expected(fmt::format("model.layers.{}.mlp.down_proj.weight", L), fmt::format("layer {} is a dense MLP layer", L));
      for (const auto& [proj, record] : f.dense) {
        const bool down = proj == Projection::down;
        layer.dense[proj] = builder.weight_ref(*record, down ? H : layout.intermediate_size,
                                               down ? layout.intermediate_size : H, "dense MLP");
      }
    } else {
      if (!f.dense.empty())
        throw InputError(file_of(f.dense.begin()->second), f.dense.begin()->second->info->name,
                         fmt::format("layer {} has a dense MLP, but config.json makes it an MoE layer", L));
      layer.routed.resize(static_cast<std::size_t>(layout.n_routed_experts));
      const std::uint64_t I = layout.moe_intermediate_size;
      for (const auto& [key, record] : f.routed) {
        const auto [expert, proj] = key;
        if (expert >= layout.n_routed_experts)
          throw InputError(file_of(record), record->info->name,
                           fmt::format("expert {} is beyond n_routed_experts={} of config.json", expert, layout.n_routed_experts));
        const bool down = proj == Projection::down;
        layer.routed[static_cast<std::size_t>(expert)][proj] =
            builder.weight_ref(*record, down ? H : I, down ? I : H, "routed expert");
      }
      for (int e = 0; e < layout.n_routed_experts; ++e)
        if (!layer.routed[static_cast<std::size_t>(e)][Projection::down].present())
          throw expected(fmt::format("model.layers.{}.mlp.experts.{}.down_proj.weight", L, e),
                         fmt::format("config.json gives layer {} {} routed experts", L, layout.n_routed_experts));
      if (!f.shared.empty()) {
        const std::uint64_t S = I * static_cast<std::uint64_t>(std::max(layout.n_shared_experts, 1));
        ProjectionSet shared;
        for (const auto& [proj, record] : f.shared) {
          const bool down = proj == Projection::down;
          shared[proj] = builder.weight_ref(*record, down ? H : S, down ? S : H, "shared expert");
        }
        if (!shared[Projection::down].present())
          throw expected(fmt::format("model.layers.{}.mlp.shared_experts.down_proj.weight", L),
                         "the layer has the other shared-expert projections");
        layer.shared = shared;
      } else if (layout.n_shared_experts > 0) {
        throw expected(fmt::format("model.layers.{}.mlp.shared_experts.down_proj.weight", L),
                       fmt::format("config.json gives n_shared_experts={}", layout.n_shared_experts));
      }
      // The router is not analysed in phase 1, but a router that contradicts config.json means
      // the checkpoint is not what its config says.
      const auto E = static_cast<std::uint64_t>(layout.n_routed_experts);
      if (f.router && f.router->info->shape != std::vector<std::uint64_t>{E, H})
        throw InputError(file_of(f.router), f.router->info->name,
                         fmt::format("router shape {} disagrees with config.json, which gives [{}, {}]",
                                     shape_text(f.router->info->shape), E, H));
      if (f.router_bias && f.router_bias->info->shape != std::vector<std::uint64_t>{E})
        throw InputError(file_of(f.router_bias), f.router_bias->info->name,
                         fmt::format("router bias shape {} disagrees with config.json, which gives [{}]",
                                     shape_text(f.router_bias->info->shape), E));
      layer.router = f.router;
      layer.router_bias = f.router_bias;
    }
    layout.layers.push_back(std::move(layer));
  }
  return layout;
}

nlohmann::ordered_json ModelLayout::to_json(const std::string& model_name) const {
  using ojson = nlohmann::ordered_json;
  const auto matrix_json = [](const WeightRef& w) {
    ojson m;
    m["tensor"] = w.weight->info->name;
    m["shape"] = {w.rows, w.cols};
    m["dtype"] = dtype_name(w.weight->info->dtype);
    m["block_scale"] = w.scale ? ojson(w.scale->info->name) : ojson(nullptr);
    return m;
  };
  const auto projections_json = [&](const ProjectionSet& set) {
    ojson out = ojson::object();
    for (Projection p : kProjections)
      if (set[p].present()) {
        ojson m = matrix_json(set[p]);
        m.erase("tensor");
        out[projection_name(p)] = m;
      }
    return out;
  };

  ojson j;
  j["model"] = model_name;
  j["family"] = family;
  j["model_type"] = model_type;
  j["architectures"] = architectures;
  j["num_hidden_layers"] = num_layers;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["n_routed_experts"] = n_routed_experts;
  j["n_shared_experts"] = n_shared_experts;
  j["num_experts_per_tok"] = experts_per_token;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["moe_layer_freq"] = moe_layer_freq;
  j["routing"] = routing;
  if (quantization) {
    j["quantization"] = {{"method", quantization->method},
                         {"format", quantization->format},
                         {"weight_block_size", {quantization->block_rows, quantization->block_cols}}};
  } else {
    j["quantization"] = nullptr;
  }
  j["dense_layers"] = dense_layers();
  j["moe_layers"] = moe_layers();
  j["skipped_layers"] = skipped_layers;
  j["ignored_tensors"] = ignored_tensors;
  ojson layer_list = ojson::array();
  for (const LayerLayout& l : layers) {
    ojson lj;
    lj["layer"] = l.index;
    lj["kind"] = layer_kind_name(l.kind);
    if (l.kind == LayerKind::dense) {
      lj["mlp"] = projections_json(l.dense);
    } else {
      lj["routed_experts"] = l.routed.size();
      lj["expert"] = l.routed.empty() ? ojson(nullptr) : projections_json(l.routed.front());
      lj["shared_expert"] = l.shared ? projections_json(*l.shared) : ojson(nullptr);
      if (l.router) {
        lj["router"] = {{"tensor", l.router->info->name},
                        {"shape", l.router->info->shape},
                        {"dtype", dtype_name(l.router->info->dtype)}};
      } else {
        lj["router"] = nullptr;
      }
      lj["router_bias"] = l.router_bias ? ojson(l.router_bias->info->name) : ojson(nullptr);
    }
    layer_list.push_back(lj);
  }
  j["layers"] = layer_list;
  return j;
}

}  // namespace vindex
