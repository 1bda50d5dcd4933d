// Layout detection: the family's config.json reader and naming (vindex/model/family.hpp) say where
// the MLP tensors are; this file finds them by name, checks their shapes, dtypes and scales
// against config.json, and cuts fused expert tensors into per-expert slices.
#include "vindex/model/layout.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "family_config.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"
#include "vindex/model/gguf_dequantize.hpp"

namespace vindex {
namespace {


constexpr std::string_view kScaleInvSuffix = "_scale_inv";  // DeepSeek's block scales
constexpr std::string_view kScaleSuffix = "_scale";         // compressed-tensors, AutoFP8, FBGEMM

// Parses a decimal index with no sign, leading zeros or trailing characters.
std::optional<int> parse_index(std::string_view text) {
  if (text.empty() || text.size() > 9 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

// Splits "a.b.c" at the first dot: returns "a" and leaves "b.c" in `rest`.
std::string_view take_component(std::string_view& rest) {
  const auto dot = rest.find('.');
  const std::string_view head = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  return head;
}

// "<projection>.weight" (or GPTQ's and AWQ's packed "<projection>.qweight") with the given
// projection names -> the projection.
std::optional<Projection> parse_projection_weight(std::string_view rest, const std::array<std::string, 3>& names) {
  const std::string_view head = take_component(rest);
  if (rest != "weight" && rest != "qweight") return std::nullopt;
  for (Projection p : kProjections)
    if (head == names[static_cast<std::size_t>(p)]) return p;
  return std::nullopt;
}

const std::array<std::string, 3> kStandardProjections{"gate_proj", "up_proj", "down_proj"};

enum class Kind { none, dense, routed, shared, router, router_bias, shared_gate, fused, gguf_fused };
enum class FusedMatrix { gate_up, down };
enum class FusedPart { values, blocks, scales, bias };

struct ParsedName {
  Kind kind = Kind::none;
  int expert = -1;
  Projection proj = Projection::down;
  FusedMatrix fused = FusedMatrix::down;
  FusedPart part = FusedPart::values;
};

// Parses what follows "<prefix>L." of a layer's tensor.
ParsedName parse_layer_tensor(std::string_view rest, const TensorNaming& naming) {
  ParsedName parsed;
  if (naming.bert_style) {
    if (rest == "intermediate.dense.weight") return {Kind::dense, -1, Projection::up};
    if (rest == "output.dense.weight") return {Kind::dense, -1, Projection::down};
    return parsed;
  }
  if (take_component(rest) != naming.mlp_module) return parsed;
  if (!naming.router.empty() && rest == naming.router + ".weight") return {Kind::router};
  for (const std::string& bias : naming.router_bias)
    if (rest == bias) return {Kind::router_bias};
  if (rest == "shared_expert_gate.weight") return {Kind::shared_gate};
  std::string_view inner = rest;
  const std::string_view head = take_component(inner);
  if (!naming.shared.empty() && head == naming.shared) {
    if (const auto p = parse_projection_weight(inner, kStandardProjections)) return {Kind::shared, 0, *p};
    return parsed;
  }
  if (head == "experts") {
    std::string_view after = inner;
    const std::string_view second = take_component(after);
    if (const auto expert = parse_index(second)) {
      if (const auto p = parse_projection_weight(after, naming.expert_projections)) return {Kind::routed, *expert, *p};
      return parsed;
    }
    if (naming.storage == ExpertStorage::per_expert || !after.empty()) return parsed;
    for (const auto& [base, matrix] : {std::pair{"gate_up_proj", FusedMatrix::gate_up}, std::pair{"down_proj", FusedMatrix::down}})
      for (const auto& [suffix, part] : {std::pair{"", FusedPart::values}, std::pair{"_blocks", FusedPart::blocks},
                                         std::pair{"_scales", FusedPart::scales}, std::pair{"_bias", FusedPart::bias}})
        if (second == std::string(base) + suffix) return {Kind::fused, -1, Projection::down, matrix, part};
    return parsed;
  }
  if (const auto p = parse_projection_weight(rest, kStandardProjections)) return {Kind::dense, -1, *p};
  return parsed;
}

// Parses what follows "blk.L." of a GGUF tensor (llama.cpp's names, the same for every family):
// ffn_{gate,up,down}.weight (a dense MLP), ffn_{gate,up,down}_exps.weight (the routed experts fused
// into one [E, out, in] tensor), ffn_{gate,up,down}_shexp.weight (the shared expert),
// ffn_gate_inp.weight (the router), exp_probs_b.bias (DeepSeek's selection bias) or
// ffn_gate_inp.bias (GPT-OSS's router bias), and
// ffn_gate_inp_shexp.weight (Qwen2-MoE's shared-expert gate).
ParsedName parse_gguf_layer_tensor(std::string_view rest) {
  if (rest == "ffn_gate_inp.weight") return {Kind::router};
  if (rest == "exp_probs_b.bias" || rest == "ffn_gate_inp.bias") return {Kind::router_bias};  // DeepSeek's; GPT-OSS's
  if (rest == "ffn_gate_inp_shexp.weight") return {Kind::shared_gate};
  static constexpr std::pair<const char*, Projection> kNames[] = {
      {"ffn_gate", Projection::gate}, {"ffn_up", Projection::up}, {"ffn_down", Projection::down}};
  for (const auto& [base, proj] : kNames) {
    const std::string b(base);
    if (rest == b + ".weight") return {Kind::dense, -1, proj};
    if (rest == b + "_exps.weight") return {Kind::gguf_fused, -1, proj};
    if (rest == b + "_shexp.weight") return {Kind::shared, 0, proj};
  }
  return {};
}

const TensorNaming& gguf_naming() {
  static const TensorNaming naming = [] {
    TensorNaming n;
    n.layer_prefixes = {"blk."};
    return n;
  }();
  return naming;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

// The MLP tensors of one layer, by what their names say.
struct Found {
  std::map<Projection, const TensorRecord*> dense, shared;
  std::map<std::pair<int, Projection>, const TensorRecord*> routed;
  std::map<std::pair<FusedMatrix, FusedPart>, const TensorRecord*> fused;
  std::map<Projection, const TensorRecord*> gguf_fused;  // blk.L.ffn_*_exps.weight
  const TensorRecord* router = nullptr;
  const TensorRecord* router_bias = nullptr;
  const TensorRecord* shared_gate = nullptr;
};

class LayoutBuilder {
 public:
  LayoutBuilder(const Checkpoint& ckpt, const ModelLayout& layout) : ckpt_(ckpt), layout_(layout) {}

  std::string file_of(const TensorRecord* r) const { return ckpt_.shards()[r->shard].path.string(); }

  // llama.cpp's bitnet architecture may give a weight a one-element companion, `<name>.scale`,
  // that multiplies the layer's output (llama-model.cpp: ffn_down_scale and the like). Its product
  // is not formed yet, so such a checkpoint is refused rather than measured without it.
  void refuse_gguf_tensor_scale(const std::string& name) const {
    constexpr std::string_view kWeight = ".weight";
    if (name.size() <= kWeight.size() || name.compare(name.size() - kWeight.size(), kWeight.size(), kWeight) != 0)
      return;
    const std::string scale = name.substr(0, name.size() - kWeight.size()) + ".scale";
    if (const TensorRecord* r = ckpt_.find(scale))
      throw InputError(file_of(r), scale,
                       fmt::format("a per-tensor scale of {} (llama.cpp's bitnet layout); vindex_mpi does not "
                                   "apply such scales yet, so this checkpoint is not read",
                                   name));
  }

  // One matrix stored as its own tensor, [rows, cols] = [out_features, in_features].
  WeightRef weight_ref(const TensorRecord& record, std::uint64_t rows, std::uint64_t cols, const char* what) const {
    const TensorInfo& info = *record.info;
    const std::string file = file_of(&record);
    if (info.shape.size() != 2)
      throw InputError(file, info.name, fmt::format("{} weight has shape {}, expected a matrix", what, shape_text(info.shape)));
    // transformers' offline BitNet stores four ternary codes a byte: [rows / 4, cols] of U8.
    const bool bitnet = layout_.quantization && layout_.quantization->method == "bitnet" && info.dtype == DType::U8;
    if (bitnet && rows % 4 != 0)
      throw InputError(file, info.name, fmt::format("a packed BitNet weight of {} rows, not a multiple of 4", rows));
    // GPTQ's and AWQ's qweight: int32 words of eight 4-bit codes, shape checked with its companions.
    const bool packed = info.name.ends_with(".qweight");
    if (packed && !(layout_.quantization && layout_.quantization->packed_int()))
      throw InputError(file, info.name,
                       fmt::format("a packed qweight, but config.json's quantization_config declares {} (GPTQ's or "
                                   "AWQ's quant_method gptq or awq is needed to read it)",
                                   layout_.quantization ? "quant_method " + layout_.quantization->method
                                                        : std::string("no quantization")));
    const std::uint64_t stored_rows = bitnet ? rows / 4 : rows;
    if (!packed && (info.shape[0] != stored_rows || info.shape[1] != cols))
      throw InputError(file, info.name,
                       fmt::format("shape {} disagrees with config.json, which gives [{}, {}] for a {} matrix{}",
                                   shape_text(info.shape), rows, cols, what,
                                   bitnet ? fmt::format(" (packed BitNet: [{}, {}] of U8)", stored_rows, cols) : ""));
    WeightRef ref;
    ref.weight = &record;
    ref.rows = rows;
    ref.cols = cols;
    ref.slice.row_stride = cols;
    if (info.ggml_type) {
      require_gguf_dequantizable(*info.ggml_type, file, info.name);
      refuse_gguf_tensor_scale(info.name);
      ref.encoding = WeightEncoding::gguf_blocks;
      return ref;
    }
    if (bitnet) {
      ref.encoding = WeightEncoding::bitnet_packed;
      ref.scale = &bitnet_scale_for(record);
      return ref;
    }
    if (packed) {
      attach_int4_companions(ref, rows, cols);
      return ref;
    }
    check_plain_dtype(record, true);
    if (info.dtype == DType::F8_E4M3) {
      ref.encoding = WeightEncoding::fp8_block;
      ref.scale = &scale_for(record, rows, cols);
    }
    return ref;
  }

  // The routed experts of a layer whose experts are fused into [E, ...] tensors.
  std::vector<ProjectionSet> fused_experts(const Found& f, int layer, ExpertStorage storage) const {
    const auto E = static_cast<std::uint64_t>(layout_.n_routed_experts);
    const std::uint64_t H = layout_.hidden_size, I = layout_.moe_intermediate_size;
    std::vector<ProjectionSet> experts(E);
    const auto part = [&](FusedMatrix m, FusedPart p) -> const TensorRecord* {
      const auto it = f.fused.find({m, p});
      return it == f.fused.end() ? nullptr : it->second;
    };
    const std::string prefix = fmt::format("layer {}'s fused experts", layer);
    for (FusedMatrix m : {FusedMatrix::gate_up, FusedMatrix::down}) {
      const TensorRecord* values = part(m, FusedPart::values);
      const TensorRecord* blocks = part(m, FusedPart::blocks);
      const TensorRecord* scales = part(m, FusedPart::scales);
      const char* base = m == FusedMatrix::gate_up ? "gate_up_proj" : "down_proj";
      if (values && blocks)
        throw InputError(file_of(blocks), blocks->info->name,
                         fmt::format("{} has both {} and {}_blocks", prefix, values->info->name, base));
      if (!values && !blocks)
        throw InputError(ckpt_.listing_path().string(), fmt::format("experts.{} of layer {}", base, layer),
                         fmt::format("is missing: {} has no {} tensor", prefix, base));
      // out x in of one expert's matrix ([2I, H] for gate_up: gate and up together).
      const std::uint64_t out = m == FusedMatrix::gate_up ? 2 * I : H;
      const std::uint64_t in = m == FusedMatrix::gate_up ? H : I;
      if (values) {
        // bf16/f16/f32 as transformers saves them: [E, in, out] (input x output).
        expect_shape(*values, {E, in, out}, "fused expert");
        check_plain_dtype(*values, false);
        for (std::uint64_t e = 0; e < E; ++e) {
          const std::uint64_t base_offset = e * in * out;
          if (m == FusedMatrix::down) {
            experts[e][Projection::down] = fused_ref(values, nullptr, H, I, WeightEncoding::plain,
                                                     {base_offset, H, 1, true});
            continue;
          }
          // gate and up: the first and second half of the last dimension (Llama-4), or its even
          // and odd columns (GPT-OSS).
          const bool halves = storage == ExpertStorage::fused_halves;
          const StoredSlice gate{base_offset, 2 * I, halves ? 1u : 2u, true};
          const StoredSlice up{base_offset + (halves ? I : 1), 2 * I, halves ? 1u : 2u, true};
          experts[e][Projection::gate] = fused_ref(values, nullptr, I, H, WeightEncoding::plain, gate);
          experts[e][Projection::up] = fused_ref(values, nullptr, I, H, WeightEncoding::plain, up);
        }
        continue;
      }
      // MXFP4 as openai/gpt-oss-* publish it: blocks [E, out, in/32, 16] of U8, scales [E, out, in/32].
      if (storage != ExpertStorage::fused_interleaved)
        throw InputError(file_of(blocks), blocks->info->name, "MXFP4 blocks are read for GPT-OSS only");
      if (in % 32 != 0)
        throw InputError(file_of(blocks), blocks->info->name,
                         fmt::format("MXFP4 needs an input width divisible by 32, config.json gives {}", in));
      if (!scales)
        throw InputError(file_of(blocks), blocks->info->name, fmt::format("MXFP4 blocks have no {}_scales tensor", base));
      expect_shape(*blocks, {E, out, in / 32, 16}, "MXFP4 block");
      expect_shape(*scales, {E, out, in / 32}, "MXFP4 scale");
      for (const TensorRecord* r : {blocks, scales})
        if (r->info->dtype != DType::U8)
          throw InputError(file_of(r), r->info->name,
                           fmt::format("dtype {} is not U8, which MXFP4 blocks and e8m0 scales are stored as",
                                       dtype_name(r->info->dtype)));
      for (std::uint64_t e = 0; e < E; ++e) {
        const std::uint64_t base_offset = e * out * in;
        if (m == FusedMatrix::down) {
          experts[e][Projection::down] = fused_ref(blocks, scales, H, I, WeightEncoding::mxfp4, {base_offset, I, 1, false});
          continue;
        }
        // Rows of [2I, H]: even rows gate, odd rows up (the interleaving of the bf16 form, transposed).
        experts[e][Projection::gate] = fused_ref(blocks, scales, I, H, WeightEncoding::mxfp4, {base_offset, 2 * H, 1, false});
        experts[e][Projection::up] = fused_ref(blocks, scales, I, H, WeightEncoding::mxfp4, {base_offset + H, 2 * H, 1, false});
      }
    }
    return experts;
  }

  // The routed experts of a GGUF layer: blk.L.ffn_{gate,up,down}_exps.weight, each [E, out, in]
  // (GGUF dims [in, out, E]); expert e's matrix is rows [e * out, (e + 1) * out), read in place.
  std::vector<ProjectionSet> gguf_experts(const Found& f, int layer) const {
    const auto E = static_cast<std::uint64_t>(layout_.n_routed_experts);
    const std::uint64_t H = layout_.hidden_size, I = layout_.moe_intermediate_size;
    std::vector<ProjectionSet> experts(E);
    if (!f.gguf_fused.count(Projection::down))
      throw InputError(ckpt_.listing_path().string(), fmt::format("blk.{}.ffn_down_exps.weight", layer),
                       fmt::format("is missing: the metadata gives layer {} {} routed experts", layer, E));
    for (const auto& [proj, record] : f.gguf_fused) {
      const bool down = proj == Projection::down;
      const std::uint64_t out = down ? H : I, in = down ? I : H;
      expect_shape(*record, {E, out, in}, "fused expert");
      const TensorInfo& info = *record->info;
      WeightEncoding encoding = WeightEncoding::plain;
      if (info.ggml_type) {
        require_gguf_dequantizable(*info.ggml_type, file_of(record), info.name);
        encoding = WeightEncoding::gguf_blocks;
      } else {
        check_plain_dtype(*record, false);
      }
      for (std::uint64_t e = 0; e < E; ++e)
        experts[e][proj] = fused_ref(record, nullptr, out, in, encoding, {e * out * in, in, 1, false});
    }
    return experts;
  }

  // Attaches a router ([experts, hidden]) after checking it.
  WeightRef router_ref(const TensorRecord& record) const {
    const std::vector<std::uint64_t> want{static_cast<std::uint64_t>(layout_.n_routed_experts), layout_.hidden_size};
    if (record.info->shape != want)
      throw InputError(file_of(&record), record.info->name,
                       fmt::format("router shape {} disagrees with config.json, which gives {}",
                                   shape_text(record.info->shape), shape_text(want)));
    return weight_ref(record, want[0], want[1], "router");
  }

 private:
  static WeightRef fused_ref(const TensorRecord* weight, const TensorRecord* scale, std::uint64_t rows, std::uint64_t cols,
                             WeightEncoding encoding, StoredSlice slice) {
    WeightRef ref{weight, scale, rows, cols, encoding, slice};
    return ref;
  }

  void expect_shape(const TensorRecord& record, const std::vector<std::uint64_t>& want, const char* what) const {
    if (record.info->shape != want)
      throw InputError(file_of(&record), record.info->name,
                       fmt::format("{} tensor has shape {}, but config.json gives {}", what, shape_text(record.info->shape),
                                   shape_text(want)));
  }

  void check_plain_dtype(const TensorRecord& record, bool allow_fp8) const {
    const DType d = record.info->dtype;
    if (!(allow_fp8 ? is_weight_dtype(d) : is_float_dtype(d)))
      throw InputError(file_of(&record), record.info->name,
                       fmt::format("dtype {} is not a supported weight type ({})", dtype_name(d),
                                   allow_fp8 ? "F8_E4M3 with block scales, BF16, F16, F32"
                                             : "fused experts: BF16, F16, F32, or MXFP4 _blocks/_scales"));
  }

  // GPTQ's or AWQ's qweight of a [rows, cols] = [out, in] matrix and the tensors beside it
  // (<name>.qzeros, .scales, and GPTQ's .g_idx), their dtypes and shapes checked against config.json's
  // sizes and quantization_config's group_size. The values of g_idx are checked when it is read.
  void attach_int4_companions(WeightRef& ref, std::uint64_t rows, std::uint64_t cols) const {
    const BlockQuantization& q = *layout_.quantization;
    const TensorRecord& qweight = *ref.weight;
    const std::string base = qweight.info->name.substr(0, qweight.info->name.size() - std::string_view(".qweight").size());
    const bool gptq = q.method == "gptq";
    const std::uint64_t out = rows, in = cols;
    const std::uint64_t gs = q.group_size == -1 ? in : static_cast<std::uint64_t>(q.group_size);
    const std::uint64_t groups = gptq ? ceil_div(in, gs) : in / gs;
    const auto require = [&](const TensorRecord& r, DType dtype, const std::vector<std::uint64_t>& shape, const std::string& what) {
      if (r.info->dtype != dtype && !(dtype == DType::F16 && is_float_dtype(r.info->dtype)))
        throw InputError(file_of(&r), r.info->name,
                         fmt::format("dtype {} is not {} ({} {})", dtype_name(r.info->dtype),
                                     dtype == DType::F16 ? "F16, BF16 or F32" : dtype_name(dtype), q.method, what));
      if (r.info->shape != shape)
        throw InputError(file_of(&r), r.info->name,
                         fmt::format("shape {} does not fit a [{}, {}] (out, in) matrix of config.json: {} {} is {} "
                                     "(bits 4, group_size {})",
                                     shape_text(r.info->shape), out, in, q.method, what, shape_text(shape), q.group_size));
    };
    const auto companion = [&](const char* suffix) -> const TensorRecord* { return ckpt_.find(base + suffix); };
    const auto need = [&](const char* suffix) -> const TensorRecord& {
      const TensorRecord* r = companion(suffix);
      if (!r)
        throw InputError(file_of(&qweight), qweight.info->name,
                         fmt::format("{} qweight has no '{}{}' tensor beside it", q.method, base, suffix));
      return *r;
    };
    // Eight codes a word: along the input for GPTQ ([in/8, out]), along the output for AWQ ([in, out/8]).
    if ((gptq ? in : out) % 8 != 0 || out % 8 != 0 || (!gptq && in % gs != 0))
      throw InputError(file_of(&qweight), qweight.info->name,
                       fmt::format("a [{}, {}] (out, in) matrix does not pack into {} words of eight 4-bit codes{}", out,
                                   in, q.method, gptq ? "" : fmt::format(" with groups of {} inputs", gs)));
    require(qweight, DType::I32, gptq ? std::vector<std::uint64_t>{in / 8, out} : std::vector<std::uint64_t>{in, out / 8},
            "qweight");
    ref.zeros = &need(".qzeros");
    require(*ref.zeros, DType::I32, {groups, out / 8}, "qzeros");
    ref.scale = &need(".scales");
    require(*ref.scale, DType::F16, {groups, out}, "scales");
    ref.encoding = gptq ? WeightEncoding::gptq : WeightEncoding::awq;
    if (!gptq) return;
    ref.g_idx = companion(".g_idx");
    if (ref.g_idx) require(*ref.g_idx, DType::I32, {in}, "g_idx");
    else if (q.desc_act)
      throw InputError(file_of(&qweight), qweight.info->name,
                       fmt::format("quantization_config.desc_act is true (act-order), but there is no '{}.g_idx' tensor "
                                   "mapping inputs to groups",
                                   base));
  }

  // A packed BitNet weight's weight_scale: one value, by which BitLinear divides its output.
  const TensorRecord& bitnet_scale_for(const TensorRecord& weight) const {
    const std::string scale_name = weight.info->name + "_scale";
    const TensorRecord* scale = ckpt_.find(scale_name);
    if (!scale)
      throw InputError(file_of(&weight), weight.info->name,
                       fmt::format("packed BitNet weight has no scale tensor '{}'", scale_name));
    if (!is_float_dtype(scale->info->dtype) || scale->info->num_elements() != 1)
      throw InputError(file_of(scale), scale->info->name,
                       fmt::format("a BitNet weight_scale must be one F32, BF16 or F16 value, not {} {}",
                                   dtype_name(scale->info->dtype), shape_text(scale->info->shape)));
    return *scale;
  }

  // An F8_E4M3 weight's scale tensor, as quantization_config lays it out (DeepSeek's block scales
  // when config.json declares none).
  const TensorRecord& scale_for(const TensorRecord& weight, std::uint64_t rows, std::uint64_t cols) const {
    const BlockQuantization q = layout_.quantization.value_or(BlockQuantization{});
    const std::string scale_name = weight.info->name + q.scale_suffix;
    const TensorRecord* scale = ckpt_.find(scale_name);
    if (!scale)
      throw InputError(file_of(&weight), weight.info->name,
                       fmt::format("F8_E4M3 weight has no scale tensor '{}' ({} scaling{})", scale_name,
                                   fp8_scaling_name(q.scaling),
                                   q.method.empty() ? "" : ", quantization_config.quant_method " + q.method));
    const TensorInfo& info = *scale->info;
    if (!is_float_dtype(info.dtype))
      throw InputError(file_of(scale), info.name, fmt::format("scale dtype {} is not F32, BF16 or F16", dtype_name(info.dtype)));
    const auto [br, bc] = q.scale_block(rows, cols);
    const std::uint64_t n_rows = ceil_div(rows, br), n_cols = ceil_div(cols, bc);
    // Block scales are [rows/br, cols/bc]; a per-tensor scale is one value (shape [], [1] or [1, 1]);
    // a per-channel scale is [rows, 1] (or [rows]).
    bool fits = info.shape == std::vector<std::uint64_t>{n_rows, n_cols};
    if (q.scaling == Fp8Scaling::tensor) fits = info.num_elements() == 1 && info.shape.size() <= 2;
    if (q.scaling == Fp8Scaling::channel)
      fits = info.shape == std::vector<std::uint64_t>{rows, 1} || info.shape == std::vector<std::uint64_t>{rows};
    if (!fits)
      throw InputError(file_of(scale), info.name,
                       fmt::format("scale shape {} does not fit a [{}, {}] weight with {} scaling ({})",
                                   shape_text(info.shape), rows, cols, fp8_scaling_name(q.scaling),
                                   q.scaling == Fp8Scaling::block  ? fmt::format("[{}, {}] for {}x{} blocks", n_rows, n_cols, br, bc)
                                   : q.scaling == Fp8Scaling::tensor ? std::string("one value")
                                                                     : fmt::format("[{}, 1]", rows)));
    return *scale;
  }

  const Checkpoint& ckpt_;
  const ModelLayout& layout_;
};

// GPTQ's and AWQ's <name>.qzeros, .scales and .g_idx beside a <name>.qweight.
bool is_int4_companion(const Checkpoint& ckpt, const std::string& name) {
  for (std::string_view suffix : {".qzeros", ".scales", ".g_idx"})
    if (name.ends_with(suffix) && ckpt.find(name.substr(0, name.size() - suffix.size()) + ".qweight")) return true;
  return false;
}

// Sorts every tensor name into its layer's Found; counts what is not an MLP tensor. `layer_prefix` gets
// the layer prefix the checkpoint uses (the family's first when none matched).
std::vector<Found> find_mlp_tensors(const Checkpoint& ckpt, const TensorNaming& naming, ModelLayout& layout,
                                    std::string& layer_prefix) {
  layer_prefix = naming.layer_prefixes.front();
  bool prefix_seen = false;
  std::vector<Found> found(static_cast<std::size_t>(layout.num_layers));
  std::set<int> skipped;
  for (const std::string& name : ckpt.tensor_names()) {
    if (name.ends_with(kScaleInvSuffix) || name.ends_with(kScaleSuffix)) continue;  // looked up from its weight
    if (is_int4_companion(ckpt, name)) continue;  // GPTQ's and AWQ's, looked up from the qweight
    std::string_view rest = name;
    const auto prefix = std::find_if(naming.layer_prefixes.begin(), naming.layer_prefixes.end(),
                                     [&](const std::string& p) { return rest.starts_with(p); });
    if (prefix == naming.layer_prefixes.end()) {
      ++layout.ignored_tensors;
      continue;
    }
    if (!prefix_seen) {
      layer_prefix = *prefix;
      prefix_seen = true;
    }
    rest.remove_prefix(prefix->size());
    const auto layer = parse_index(take_component(rest));
    if (!layer) {
      ++layout.ignored_tensors;
      continue;
    }
    if (*layer >= layout.num_layers) {  // e.g. DeepSeek-V3's multi-token-prediction layer
      skipped.insert(*layer);
      continue;
    }
    const ParsedName parsed = ckpt.is_gguf() ? parse_gguf_layer_tensor(rest) : parse_layer_tensor(rest, naming);
    const TensorRecord* record = ckpt.find(name);
    Found& f = found[static_cast<std::size_t>(*layer)];
    switch (parsed.kind) {
      case Kind::dense: f.dense[parsed.proj] = record; break;
      case Kind::shared: f.shared[parsed.proj] = record; break;
      case Kind::routed: f.routed[{parsed.expert, parsed.proj}] = record; break;
      case Kind::fused:
        if (parsed.part == FusedPart::bias) ++layout.ignored_tensors;  // biases are not matrices
        else f.fused[{parsed.fused, parsed.part}] = record;
        break;
      case Kind::gguf_fused: f.gguf_fused[parsed.proj] = record; break;
      case Kind::router: f.router = record; break;
      case Kind::router_bias: f.router_bias = record; break;
      case Kind::shared_gate: f.shared_gate = record; break;
      case Kind::none: ++layout.ignored_tensors; break;
    }
  }
  layout.skipped_layers.assign(skipped.begin(), skipped.end());
  return found;
}

}  // namespace

const char* layer_kind_name(LayerKind kind) { return kind == LayerKind::dense ? "dense" : "moe"; }

const char* fp8_scaling_name(Fp8Scaling s) {
  switch (s) {
    case Fp8Scaling::block: return "block";
    case Fp8Scaling::tensor: return "tensor";
    case Fp8Scaling::channel: return "channel";
  }
  return "?";
}

const char* role_name(MatrixRole role) {
  switch (role) {
    case MatrixRole::dense: return "dense";
    case MatrixRole::routed: return "routed";
    case MatrixRole::shared: return "shared";
    case MatrixRole::router: return "router";
  }
  return "?";
}

const char* projection_name(Projection proj) {
  switch (proj) {
    case Projection::gate: return "gate_proj";
    case Projection::up: return "up_proj";
    case Projection::down: return "down_proj";
  }
  return "?";
}

std::uint64_t WeightRef::stored_bytes() const {
  const std::uint64_t elements = rows * cols;
  if (encoding == WeightEncoding::mxfp4) return elements / 2 + elements / 32;
  if (encoding == WeightEncoding::bitnet_packed) return elements / 4 + (scale ? scale->info->byte_size() : 0);
  if (encoding == WeightEncoding::gptq || encoding == WeightEncoding::awq) {
    std::uint64_t bytes = weight->info->byte_size();
    for (const TensorRecord* r : {scale, zeros, g_idx})
      if (r) bytes += r->info->byte_size();
    return bytes;
  }
  if (encoding == WeightEncoding::gguf_blocks) {
    const GgmlTypeTraits* t = ggml_type_traits(weight->info->ggml_type.value_or(0));
    return t ? elements / t->block_size * t->type_size : 0;
  }
  std::uint64_t bytes = elements * dtype_bits(weight->info->dtype) / 8;
  if (scale) bytes += scale->info->byte_size();
  return bytes;
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
  // A GGUF file's metadata is read as the config.json its family's reader knows.
  const nlohmann::json gguf_config =
      ckpt.is_gguf() ? layout_detail::gguf_config(ckpt.config(), ckpt.config_path().string()) : nlohmann::json();
  const nlohmann::json gguf_keys = ckpt.is_gguf() ? layout_detail::gguf_key_names(ckpt.config()) : nlohmann::json();
  layout_detail::ConfigReader config(ckpt.is_gguf() ? gguf_config : ckpt.config(), ckpt.config_path().string());
  if (ckpt.is_gguf()) config.set_key_names(&gguf_keys);  // messages name the GGUF keys
  const std::vector<bool> moe_layer = layout_detail::read_model_config(config, layout);
  const TensorNaming& naming = ckpt.is_gguf() ? gguf_naming() : traits(layout.family).naming;
  std::string layer_prefix;
  std::vector<Found> found = find_mlp_tensors(ckpt, naming, layout, layer_prefix);

  const std::string listing = ckpt.listing_path().string();
  const LayoutBuilder builder(ckpt, layout);
  const auto missing = [&](const std::string& tensor, const std::string& why) {
    return InputError(listing, tensor, fmt::format("is missing: {}", why));
  };
  const std::string module = naming.mlp_module.empty() ? "" : naming.mlp_module + ".";
  const std::uint64_t H = layout.hidden_size;
  for (int L = 0; L < layout.num_layers; ++L) {
    Found& f = found[static_cast<std::size_t>(L)];
    LayerLayout layer;
    layer.index = L;
    layer.kind = moe_layer[static_cast<std::size_t>(L)] ? LayerKind::moe : LayerKind::dense;
    if (layer.kind == LayerKind::dense) {
      const TensorRecord* expert_tensor = !f.routed.empty()     ? f.routed.begin()->second
                                          : !f.fused.empty()      ? f.fused.begin()->second
                                          : !f.gguf_fused.empty() ? f.gguf_fused.begin()->second
                                                                  : nullptr;
      if (expert_tensor)
        throw InputError(builder.file_of(expert_tensor), expert_tensor->info->name,
                         fmt::format("layer {} has routed experts, but config.json makes it a dense MLP ({})", L,
                                     layout.moe_layer_rule));
      if (!f.dense.count(Projection::down))
        throw missing(ckpt.is_gguf()        ? fmt::format("blk.{}.ffn_down.weight", L)
                      : naming.bert_style ? fmt::format("{}{}.output.dense.weight", layer_prefix, L)
                                             : fmt::format("{}{}.{}down_proj.weight", layer_prefix, L, module),
                      fmt::format("layer {} is a dense MLP layer", L));
      for (const auto& [proj, record] : f.dense) {
        const bool down = proj == Projection::down;
        const std::uint64_t I = layout.intermediate_size;
        layer.dense[proj] = builder.weight_ref(*record, down ? H : I, down ? I : H, "dense MLP");
      }
    } else {
      if (!f.dense.empty())
        throw InputError(builder.file_of(f.dense.begin()->second), f.dense.begin()->second->info->name,
                         fmt::format("layer {} has a dense MLP, but config.json makes it an MoE layer ({})", L,
                                     layout.moe_layer_rule));
      const std::uint64_t I = layout.moe_intermediate_size;
      if (ckpt.is_gguf()) {
        layer.routed = builder.gguf_experts(f, L);
      } else if (naming.storage != ExpertStorage::per_expert && f.routed.empty()) {
        layer.routed = builder.fused_experts(f, L, naming.storage);
      } else {
        layer.routed.resize(static_cast<std::size_t>(layout.n_routed_experts));
        for (const auto& [key, record] : f.routed) {
          const auto [expert, proj] = key;
          if (expert >= layout.n_routed_experts)
            throw InputError(builder.file_of(record), record->info->name,
                             fmt::format("expert {} is beyond the {} routed experts of config.json", expert,
                                         layout.n_routed_experts));
          const bool down = proj == Projection::down;
          layer.routed[static_cast<std::size_t>(expert)][proj] =
              builder.weight_ref(*record, down ? H : I, down ? I : H, "routed expert");
        }
        const std::string& down_name = naming.expert_projections[static_cast<std::size_t>(Projection::down)];
        for (int e = 0; e < layout.n_routed_experts; ++e)
          if (!layer.routed[static_cast<std::size_t>(e)][Projection::down].present())
            throw missing(fmt::format("{}{}.{}experts.{}.{}.weight", layer_prefix, L, module, e, down_name),
                          fmt::format("config.json gives layer {} {} routed experts", L, layout.n_routed_experts));
      }
      if (!f.shared.empty()) {
        const std::uint64_t S = layout.shared_intermediate_size;
        ProjectionSet shared;
        for (const auto& [proj, record] : f.shared) {
          const bool down = proj == Projection::down;
          shared[proj] = builder.weight_ref(*record, down ? H : S, down ? S : H, "shared expert");
        }
        if (!shared[Projection::down].present())
          throw missing(fmt::format("{}{}.{}{}.down_proj.weight", layer_prefix, L, module, naming.shared),
                        "the layer has the other shared-expert projections");
        layer.shared = shared;
      } else if (layout.n_shared_experts > 0) {
        throw missing(fmt::format("{}{}.{}{}.down_proj.weight", layer_prefix, L, module, naming.shared),
                      fmt::format("config.json gives {} shared expert(s)", layout.n_shared_experts));
      }
      const auto E = static_cast<std::uint64_t>(layout.n_routed_experts);
      if (f.router) layer.router = builder.router_ref(*f.router);
      if (f.router_bias && f.router_bias->info->shape != std::vector<std::uint64_t>{E})
        throw InputError(builder.file_of(f.router_bias), f.router_bias->info->name,
                         fmt::format("router bias shape {} disagrees with config.json, which gives [{}]",
                                     shape_text(f.router_bias->info->shape), E));
      if (f.router_bias && !is_float_dtype(f.router_bias->info->dtype))
        throw InputError(builder.file_of(f.router_bias), f.router_bias->info->name,
                         fmt::format("router bias dtype {} is not F32, BF16 or F16", dtype_name(f.router_bias->info->dtype)));
      // [1, hidden] as transformers saves it; GGUF stores it as a vector of hidden values.
      if (f.shared_gate && f.shared_gate->info->shape != std::vector<std::uint64_t>{1, H} &&
          !(ckpt.is_gguf() && f.shared_gate->info->shape == std::vector<std::uint64_t>{H}))
        throw InputError(builder.file_of(f.shared_gate), f.shared_gate->info->name,
                         fmt::format("shared expert gate shape {} disagrees with config.json, which gives [1, {}]",
                                     shape_text(f.shared_gate->info->shape), H));
      layer.router_bias = f.router_bias;
      layer.shared_expert_gate = f.shared_gate;
    }
    layout.layers.push_back(std::move(layer));
  }
  return layout;
}

}  // namespace vindex
