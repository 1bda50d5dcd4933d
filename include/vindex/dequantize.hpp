// Where stored weights become float32 values: F8_E4M3 (e4m3fn) times its 128x128 block scale,
// BF16, F16 and F32. The dequantized value is defined as float32(code) * float32(scale), rounded
// once in float32, exactly as DeepSeek's weight_dequant does; a float64 consumer receives that
// float32 value widened, so every backend and precision sees the same matrix. NaN or Inf in a
// weight or a scale is an InputError naming the tensor and position.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "vindex/checkpoint.hpp"

namespace vindex {

// Decodes one e4m3fn code: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities;
// 0x7F and 0xFF are NaN; the largest finite magnitude is 448.
float fp8_e4m3_to_float(std::uint8_t code);
float bf16_to_float(std::uint16_t bits);
float f16_to_float(std::uint16_t bits);

// A weight matrix as stored, ready to decode: the tensor's bytes and, for F8_E4M3, its scales.
struct EncodedMatrix {
  TensorView weight;
  std::optional<TensorView> scale;
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::uint32_t block_rows = 128;
  std::uint32_t block_cols = 128;

  std::uint64_t min_dim() const { return rows < cols ? rows : cols; }
  std::uint64_t max_dim() const { return rows < cols ? cols : rows; }
};

class MatrixDecoder {
 public:
  // Decodes and checks the block scales up front (they are small).
  explicit MatrixDecoder(const EncodedMatrix& matrix);

  // Writes rows [r0, r1) x columns [c0, c1) of the dequantized matrix to `out` (row-major with
  // leading dimension `ld`) and returns the float64 sum of squares of the values written.
  double decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, float* out, std::uint64_t ld) const;
  double decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, double* out, std::uint64_t ld) const;

  // The decoded, checked block scales ([ceil(rows/br), ceil(cols/bc)] row-major; empty when the
  // weight has none), for backends that decode on a device.
  const std::vector<float>& scales() const { return scales_; }
  // Raises the InputError that names the first NaN or Inf of the matrix (a device found one).
  [[noreturn]] void fail_non_finite() const { fail_non_finite(0, m_.rows, 0, m_.cols); }

 private:
  template <typename T>
  double decode_impl(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, T* out, std::uint64_t ld) const;
  [[noreturn]] void fail_non_finite(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1) const;

  const EncodedMatrix& m_;
  std::vector<float> scales_;  // [ceil(rows/br), ceil(cols/bc)] row-major; empty when unscaled
  std::uint64_t scale_cols_ = 0;
};

}  // namespace vindex
