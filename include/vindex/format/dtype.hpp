// The element types a safetensors file may declare, with their sizes in bits.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vindex {

enum class DType : std::uint8_t {
  BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E5M2FNUZ, F8_E4M3FNUZ, F8_E8M0,
  I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
};

// Parses the dtype string of a safetensors header ("F8_E4M3", "BF16", ...); nullopt if unknown.
std::optional<DType> parse_dtype(std::string_view name);
std::string_view dtype_name(DType dtype);
// Bits per element: sub-byte types exist (F4, F6_*), so sizes are checked in bits.
unsigned dtype_bits(DType dtype);

// F32, BF16 and F16: the dtypes read as plain floating-point values (weights, scales, biases).
bool is_float_dtype(DType dtype);
// The dtypes whose values the dequantizer can turn into float32 weights: the float ones and
// F8_E4M3 (with block scales).
bool is_weight_dtype(DType dtype);

}  // namespace vindex
