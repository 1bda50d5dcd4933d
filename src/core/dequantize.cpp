// Decoding of stored weights to float32 (see vindex/dequantize.hpp for the arithmetic contract).
#include "vindex/dequantize.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "vindex/errors.hpp"

namespace vindex {
namespace {

constexpr float fp8_e4m3_value(std::uint8_t code) {
  const bool negative = code & 0x80;
  const int exponent = (code >> 3) & 0x0F;
  const int mantissa = code & 0x07;
  float magnitude = 0.0f;
  if (exponent == 0x0F && mantissa == 0x07) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) / 8.0f / 64.0f;  // subnormal: m/8 * 2^-6
  } else {
    magnitude = (1.0f + static_cast<float>(mantissa) / 8.0f);
    for (int e = exponent - 7; e > 0; --e) magnitude *= 2.0f;
    for (int e = exponent - 7; e < 0; ++e) magnitude /= 2.0f;
  }
  return negative ? -magnitude : magnitude;
}

constexpr std::array<float, 256> make_fp8_table() {
  std::array<float, 256> table{};
  for (int c = 0; c < 256; ++c) table[static_cast<std::size_t>(c)] = fp8_e4m3_value(static_cast<std::uint8_t>(c));
  return table;
}

const std::array<float, 256> kFp8Table = make_fp8_table();

template <typename U>
U load(const std::byte* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;  // safetensors is little-endian, as is every platform this builds for
}

float element_to_float(DType dtype, const std::byte* base, std::uint64_t index) {
  switch (dtype) {
    case DType::F32: return load<float>(base + 4 * index);
    case DType::BF16: return bf16_to_float(load<std::uint16_t>(base + 2 * index));
    case DType::F16: return f16_to_float(load<std::uint16_t>(base + 2 * index));
    case DType::F8_E4M3: return fp8_e4m3_to_float(std::to_integer<std::uint8_t>(base[index]));
    default: throw InternalError(fmt::format("no decoder for dtype {}", dtype_name(dtype)));
  }
}

std::string describe(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

float fp8_e4m3_to_float(std::uint8_t code) { return kFp8Table[code]; }

float bf16_to_float(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

float f16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // Inf, NaN
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

MatrixDecoder::MatrixDecoder(const EncodedMatrix& matrix) : m_(matrix) {
  const TensorInfo& info = m_.weight.info();
  if (info.byte_size() != m_.rows * m_.cols * dtype_bits(info.dtype) / 8)
    throw InternalError(fmt::format("tensor '{}' does not hold a {}x{} matrix", info.name, m_.rows, m_.cols));
  if (info.dtype == DType::F8_E4M3 && !m_.scale)
    throw InputError(m_.weight.file(), info.name, "F8_E4M3 weight has no block scale");
  if (!m_.scale) return;
  const TensorView& scale = *m_.scale;
  const std::uint64_t n = scale.info().num_elements();
  scale_cols_ = (m_.cols + m_.block_cols - 1) / m_.block_cols;
  if (n != ((m_.rows + m_.block_rows - 1) / m_.block_rows) * scale_cols_)
    throw InputError(scale.file(), scale.name(), "block scale has the wrong number of elements");
  scales_.resize(n);
  const std::byte* base = scale.bytes().data();
  for (std::uint64_t i = 0; i < n; ++i) {
    scales_[i] = element_to_float(scale.info().dtype, base, i);
    if (!std::isfinite(scales_[i]))
      throw InputError(scale.file(), scale.name(),
                       fmt::format("block scale [{}, {}] is {}", i / scale_cols_, i % scale_cols_, describe(scales_[i])));
  }
}

double MatrixDecoder::decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, float* out,
                             std::uint64_t ld) const {
  return decode_impl(r0, r1, c0, c1, out, ld);
}

double MatrixDecoder::decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, double* out,
                             std::uint64_t ld) const {
  return decode_impl(r0, r1, c0, c1, out, ld);
}

template <typename T>
double MatrixDecoder::decode_impl(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, T* out,
                                  std::uint64_t ld) const {
  VINDEX_ASSERT(r0 <= r1 && r1 <= m_.rows && c0 <= c1 && c1 <= m_.cols && c1 - c0 <= ld);
  const DType dtype = m_.weight.info().dtype;
  const std::byte* base = m_.weight.bytes().data();
  double sum_sq = 0.0;
  // Decodes columns [c0, c1) of row r with `to_float(element index)`, times `scale_of(column)`.
  const auto decode_row = [&](std::uint64_t r, auto&& to_float) {
    T* row_out = out + (r - r0) * ld - c0;
    const std::uint64_t row_start = r * m_.cols;
    double row_sq = 0.0;
    for (std::uint64_t c = c0; c < c1; ++c) {
      const float v = to_float(row_start + c);
      row_out[c] = static_cast<T>(v);
      row_sq += static_cast<double>(v) * static_cast<double>(v);
    }
    return row_sq;
  };
  for (std::uint64_t r = r0; r < r1; ++r) {
    switch (dtype) {
      case DType::F8_E4M3: {
        const auto* codes = reinterpret_cast<const std::uint8_t*>(base) + r * m_.cols;
        const float* scale_row = scales_.data() + (r / m_.block_rows) * scale_cols_;
        T* row_out = out + (r - r0) * ld - c0;
        double row_sq = 0.0;
        // One scale per block of columns, hoisted out of the inner loop.
        for (std::uint64_t cb = c0; cb < c1;) {
          const std::uint64_t block = cb / m_.block_cols;
          const std::uint64_t end = std::min(c1, (block + 1) * m_.block_cols);
          const float s = scale_row[block];
          for (std::uint64_t c = cb; c < end; ++c) {
            const float v = kFp8Table[codes[c]] * s;
            row_out[c] = static_cast<T>(v);
            row_sq += static_cast<double>(v) * static_cast<double>(v);
          }
          cb = end;
        }
        sum_sq += row_sq;
        break;
      }
      case DType::F32: sum_sq += decode_row(r, [&](std::uint64_t i) { return load<float>(base + 4 * i); }); break;
      case DType::BF16:
        sum_sq += decode_row(r, [&](std::uint64_t i) { return bf16_to_float(load<std::uint16_t>(base + 2 * i)); });
        break;
      case DType::F16:
        sum_sq += decode_row(r, [&](std::uint64_t i) { return f16_to_float(load<std::uint16_t>(base + 2 * i)); });
        break;
      default: throw InternalError(fmt::format("no decoder for dtype {}", dtype_name(dtype)));
    }
  }
  // A NaN or Inf anywhere (a NaN code, an Inf stored, or an fp8 value times its scale overflowing
  // float32) makes the sum non-finite; only then are the values searched for the culprit.
  if (!std::isfinite(sum_sq)) fail_non_finite(r0, r1, c0, c1);
  return sum_sq;
}

void MatrixDecoder::fail_non_finite(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1) const {
  const TensorInfo& info = m_.weight.info();
  const std::byte* base = m_.weight.bytes().data();
  for (std::uint64_t r = r0; r < r1; ++r)
    for (std::uint64_t c = c0; c < c1; ++c) {
      const float stored = element_to_float(info.dtype, base, r * m_.cols + c);
      if (!std::isfinite(stored))
        throw InputError(m_.weight.file(), info.name, fmt::format("weight [{}, {}] is {}", r, c, describe(stored)));
      if (!m_.scale) continue;
      const float scaled = stored * scales_[(r / m_.block_rows) * scale_cols_ + c / m_.block_cols];
      if (!std::isfinite(scaled))
        throw InputError(m_.weight.file(), info.name,
                         fmt::format("weight [{}, {}] is {} after applying its block scale", r, c, describe(scaled)));
    }
  throw InternalError(fmt::format("non-finite sum of squares of finite weights of '{}'", info.name));
}

}  // namespace vindex
