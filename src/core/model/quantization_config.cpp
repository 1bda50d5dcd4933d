#include "quantization_config.hpp"

#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/base/errors.hpp"

namespace vindex::layout_detail {
namespace {

using nlohmann::json;

constexpr const char* kKnown =
    "fp8 (with weight_block_size: block scales weight_scale_inv; without: one weight_scale per tensor), "
    "fbgemm_fp8 (one weight_scale per row), compressed-tensors (float-quantized fp8 weights: strategy tensor, "
    "channel or block), bitnet (transformers' offline bitlinear, packed), mxfp4";

[[noreturn]] void refuse(const ConfigReader& top, const std::string& key, const std::string& what) {
  throw InputError(top.file(), "", fmt::format("quantization_config.{} {}; the quantizations read are {}", key, what, kKnown));
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// compressed-tensors: every config group's weights must be fp8 of one strategy.
BlockQuantization compressed_tensors(const ConfigReader& top, const json& q) {
  BlockQuantization b;
  b.method = "compressed-tensors";
  const json format = q.value("format", json());
  if (!format.is_string() || (format != "float-quantized" && format != "naive-quantized"))
    refuse(top, "format", fmt::format("is {}: only float-quantized (naive-quantized) fp8 weights are read", text(format)));
  b.format = format.get<std::string>();
  const json groups = q.value("config_groups", json());
  if (!groups.is_object() || groups.empty()) refuse(top, "config_groups", "is missing or empty");
  std::set<std::string> strategies;
  for (const auto& [name, group] : groups.items()) {
    const std::string where = fmt::format("config_groups.{}.weights", name);
    const json w = group.is_object() ? group.value("weights", json()) : json();
    if (!w.is_object()) refuse(top, where, "is missing: activation-only quantization leaves the weights unquantized");
    if (w.value("type", json()) != "float" || w.value("num_bits", json()) != 8)
      refuse(top, where, fmt::format("are type {}, {} bits: only 8-bit float (fp8 e4m3) weights are read",
                                     text(w.value("type", json())), text(w.value("num_bits", json()))));
    if (w.value("symmetric", json(true)) != true) refuse(top, where + ".symmetric", "is false: fp8 weights with zero points are not read");
    const json strategy = w.value("strategy", json());
    if (!strategy.is_string() || (strategy != "tensor" && strategy != "channel" && strategy != "block"))
      refuse(top, where + ".strategy", fmt::format("is {}: fp8 weights are read with strategy tensor, channel or block", text(strategy)));
    strategies.insert(strategy.get<std::string>());
    if (strategy == "block") {
      const json bs = w.value("block_structure", json());
      if (!bs.is_array() || bs.size() != 2 || !bs[0].is_number_integer() || !bs[1].is_number_integer() ||
          bs[0].get<long long>() < 1 || bs[1].get<long long>() < 1 || bs[0].get<long long>() > 65536 ||
          bs[1].get<long long>() > 65536)
        refuse(top, where + ".block_structure", fmt::format("is {}: two integers from 1 to 65536", text(bs)));
      b.block_rows = bs[0].get<std::uint32_t>();
      b.block_cols = bs[1].get<std::uint32_t>();
    }
  }
  if (strategies.size() != 1)
    refuse(top, "config_groups", fmt::format("mix the weight strategies {}: one strategy per checkpoint is read",
                                             fmt::join(strategies, ", ")));
  const std::string s = *strategies.begin();
  b.scaling = s == "tensor" ? Fp8Scaling::tensor : s == "channel" ? Fp8Scaling::channel : Fp8Scaling::block;
  b.scale_suffix = "_scale";
  b.product_in_scale_dtype = true;
  return b;
}

}  // namespace

std::optional<BlockQuantization> read_quantization_config(const ConfigReader& top) {
  if (!top.has("quantization_config")) return std::nullopt;
  const json& q = top.json()["quantization_config"];
  if (!q.is_object()) refuse(top, "", "is not an object");
  const json method = q.value("quant_method", json());
  if (!method.is_string()) refuse(top, "quant_method", "is missing or not a string");
  const std::string m = method.get<std::string>();
  if (m == "compressed-tensors") return compressed_tensors(top, q);
  BlockQuantization b;
  b.method = m;
  const ConfigReader r = top.nested_or_self("quantization_config");
  if (m == "fp8") {
    b.format = r.string("fmt");
    if (!b.format.empty() && b.format != "e4m3")
      refuse(top, "fmt", fmt::format("is {}: fp8 weights are read as e4m3 (float8_e4m3fn)", b.format));
    if (r.has("weight_block_size")) {
      const std::vector<int> block = r.integer_list("weight_block_size", 1, 65536);
      if (block.size() != 2) refuse(top, "weight_block_size", "is not two integers from 1 to 65536");
      b.block_rows = static_cast<std::uint32_t>(block[0]);
      b.block_cols = static_cast<std::uint32_t>(block[1]);
    } else {
      b.scaling = Fp8Scaling::tensor;
      b.scale_suffix = "_scale";
    }
    return b;
  }
  if (m == "fbgemm_fp8") {
    b.scaling = Fp8Scaling::channel;
    b.scale_suffix = "_scale";
    return b;
  }
  if (m == "mxfp4") return b;
  if (m == "bitnet") {  // transformers' BitNet: offline BitLinear weights, packed four to a byte
    const json cls = q.value("linear_class", json("bitlinear"));
    if (cls != "bitlinear")
      refuse(top, "linear_class", fmt::format("is {}: BitNet weights are read as offline bitlinear (packed)", text(cls)));
    const json mode = q.value("quantization_mode", json("offline"));
    if (mode != "offline")
      refuse(top, "quantization_mode",
             fmt::format("is {}: online BitNet weights are stored unquantized and ternarized only at run time", text(mode)));
    b.format = "ternary, 4 a byte";
    b.scale_suffix = "_scale";
    return b;
  }
  refuse(top, "quant_method", fmt::format("is '{}', which vindex_mpi does not read", m));
}

}  // namespace vindex::layout_detail
