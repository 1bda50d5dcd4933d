// Names and sizes of safetensors element types (the list of the reference implementation's Dtype).
#include "vindex/format/dtype.hpp"

#include <array>
#include <utility>

namespace vindex {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  unsigned bits;
};

constexpr std::array<DTypeInfo, 22> kDTypes{{
    {DType::BOOL, "BOOL", 8},          {DType::F4, "F4", 4},
    {DType::F6_E2M3, "F6_E2M3", 6},    {DType::F6_E3M2, "F6_E3M2", 6},
    {DType::U8, "U8", 8},              {DType::I8, "I8", 8},
    {DType::F8_E5M2, "F8_E5M2", 8},    {DType::F8_E4M3, "F8_E4M3", 8},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8}, {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {DType::F8_E8M0, "F8_E8M0", 8},    {DType::I16, "I16", 16},
    {DType::U16, "U16", 16},           {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},         {DType::I32, "I32", 32},
    {DType::U32, "U32", 32},           {DType::F32, "F32", 32},
    {DType::C64, "C64", 64},           {DType::F64, "F64", 64},
    {DType::I64, "I64", 64},           {DType::U64, "U64", 64},
}};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  return kDTypes[0];  // unreachable: every enumerator is in the table
}

}  // namespace

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& entry : kDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

std::string_view dtype_name(DType dtype) { return info(dtype).name; }
unsigned dtype_bits(DType dtype) { return info(dtype).bits; }

bool is_float_dtype(DType dtype) { return dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32; }

bool is_weight_dtype(DType dtype) { return is_float_dtype(dtype) || dtype == DType::F8_E4M3; }

}  // namespace vindex
