#include "quantization_config.hpp"

#include <algorithm>
#include <cctype>
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
    "channel or block), bitnet (transformers' offline bitlinear, packed), gptq (bits 4, group_size, desc_act "
    "with g_idx, sym; checkpoint_format gptq or gptq_v2), awq (bits 4, version gemm, zero_point true, "
    "group_size), mxfp4";

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

// The fields GPTQ and AWQ share: 4-bit codes in int32 words, and the inputs one scale and zero cover.
void read_int4_groups(const ConfigReader& top, const json& q, BlockQuantization& b) {
  const json bits = q.value("bits", json());
  if (!bits.is_number_integer()) refuse(top, "bits", fmt::format("is {}: an integer (4) is needed", text(bits)));
  if (bits != 4)
    refuse(top, "bits", fmt::format("is {}: {} weights are read with 4 bits (eight codes an int32)", text(bits), b.method));
  b.bits = 4;
  const json group = q.value("group_size", json());
  if (!group.is_number_integer() || (group.get<long long>() < 1 && group.get<long long>() != -1) ||
      group.get<long long>() > (1LL << 24))
    refuse(top, "group_size", fmt::format("is {}: a positive integer, or -1 for one group per row", group.is_null() ? "missing" : text(group)));
  b.group_size = group.get<std::int64_t>();
}

BlockQuantization gptq(const ConfigReader& top, const json& q) {
  BlockQuantization b;
  b.method = "gptq";
  read_int4_groups(top, q, b);
  for (const char* key : {"desc_act", "sym"}) {
    const json v = q.value(key, json(std::string(key) == "sym"));
    if (!v.is_boolean()) refuse(top, key, fmt::format("is {}: true or false", text(v)));
  }
  b.desc_act = q.value("desc_act", false);
  b.sym = q.value("sym", true);
  // transformers' config.json says checkpoint_format; GPTQModel's quantize_config.json says format.
  const char* key = q.contains("checkpoint_format") ? "checkpoint_format" : "format";
  const json format = q.value(key, json("gptq"));
  if (format != "gptq" && format != "gptq_v2")
    refuse(top, key,
           fmt::format("is {}: GPTQ weights are read as gptq (qzeros stored as zero - 1) or gptq_v2 (zeros as they are)",
                       text(format)));
  b.format = format.get<std::string>();
  b.zeros_minus_one = b.format == "gptq";
  return b;
}

BlockQuantization awq(const ConfigReader& top, const json& q) {
  BlockQuantization b;
  b.method = "awq";
  read_int4_groups(top, q, b);
  if (b.group_size == -1) refuse(top, "group_size", "is -1: AWQ weights are read with a positive group_size");
  // AutoAWQ writes "GEMM", transformers' AwqConfig "gemm"; GEMV and the others pack differently.
  const json version = q.value("version", json("gemm"));
  std::string v = version.is_string() ? version.get<std::string>() : "";
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (v != "gemm")
    refuse(top, "version", fmt::format("is {}: AWQ weights are read in the GEMM packing (version gemm)", text(version)));
  const json zero_point = q.value("zero_point", json(true));
  if (zero_point != true)
    refuse(top, "zero_point", fmt::format("is {}: AWQ weights are read with zero points (zero_point true)", text(zero_point)));
  b.format = "gemm";
  b.sym = false;
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
  if (m == "gptq") return gptq(top, q);
  if (m == "awq") return awq(top, q);
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
