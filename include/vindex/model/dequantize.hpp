// Where stored weights become float32 values: F8_E4M3 (e4m3fn) times its 128x128 block scale,
// MXFP4 (e2m1 codes times an e8m0 power of two per 32 values), BF16, F16 and F32, read from a
// tensor of their own or from a slice of a fused tensor. The dequantized value is defined as
// float32(code) * float32(scale), rounded once in float32, exactly as DeepSeek's weight_dequant
// does (MXFP4 products are exact in float32, as in transformers' convert_moe_packed_tensors); a
// float64 consumer receives that float32 value widened, so every backend and precision sees the
// same matrix. GGUF block types (gguf_blocks) are decoded a row at a time by dequantize_gguf_row
// (gguf_dequantize.hpp), bit for bit ggml's values. GPTQ and AWQ 4-bit codes are (q - z) * s, the
// product (exact in float32) rounded to the scales' dtype, as their loaders compute it in fp16.
// NaN or Inf in a weight or a scale is an InputError naming the tensor and position.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"

namespace vindex {

class Xxh64;

// Decodes one e4m3fn code: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities;
// 0x7F and 0xFF are NaN; the largest finite magnitude is 448.
float fp8_e4m3_to_float(std::uint8_t code);
float bf16_to_float(std::uint16_t bits);
float f16_to_float(std::uint16_t bits);
// `v` rounded to BF16 or F16 (to nearest even; F16 overflows to Inf) and widened back; F32: `v`.
float round_to_dtype(DType dtype, float v);
// One e2m1 code (4 bits: sign, 2 exponent bits, 1 mantissa bit): 0, 0.5, 1, 1.5, 2, 3, 4, 6.
float fp4_e2m1_to_float(std::uint8_t code);
// One e8m0 scale: 2^(code - 127); 255 is NaN.
float e8m0_to_float(std::uint8_t code);

// The values of a small F32/BF16/F16 tensor (a router bias) in float64; NaN or Inf is an
// InputError naming the tensor.
std::vector<double> decode_vector(const TensorView& tensor);

// A weight matrix as stored, ready to decode: the tensor, its scales when quantized, and where in
// the tensor the matrix lies. rows x cols is the matrix as stored (its singular values are those
// of the model's [out, in] matrix either way).
struct EncodedMatrix {
  TensorView weight;
  std::optional<TensorView> scale;
  WeightEncoding encoding = WeightEncoding::plain;
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  StoredSlice slice;  // row_stride 0 means cols
  std::uint32_t block_rows = 128;  // fp8: the rows x cols one scale covers
  std::uint32_t block_cols = 128;
  // fp8: the dtype the product weight x scale is rounded to (F32: none beyond float32's; BF16 or
  // F16: the scale's dtype, where the publisher's library computes in it).
  DType product_dtype = DType::F32;
  // gptq, awq: the packed zero points (qzeros), GPTQ's g_idx (absent: input i is in group
  // i / group_size), the inputs a group covers, and whether the zeros are stored minus one (GPTQ v1).
  std::optional<TensorView> zeros;
  std::optional<TensorView> g_idx;
  std::uint64_t group_size = 0;
  bool zeros_minus_one = false;
  bool desc_act = false;  // gptq: act-order, so g_idx may be any map onto the groups

  std::uint64_t min_dim() const { return rows < cols ? rows : cols; }
  std::uint64_t max_dim() const { return rows < cols ? cols : rows; }
  std::uint64_t row_stride() const { return slice.row_stride ? slice.row_stride : cols; }
  // Bytes [begin, end) of the weight tensor that hold the matrix's elements: from its first
  // element to its last (for a slice of a fused tensor, not the whole tensor). What is read.
  std::pair<std::uint64_t, std::uint64_t> weight_span() const;
  // Asks the kernel to read the span ahead (while another matrix computes).
  void will_need() const noexcept;
  // The whole tensor, row-major, in its own elements: what a device can copy and decode as is.
  bool is_whole_tensor() const {
    return encoding != WeightEncoding::mxfp4 && encoding != WeightEncoding::gguf_blocks &&
           encoding != WeightEncoding::bitnet_packed && encoding != WeightEncoding::gptq &&
           encoding != WeightEncoding::awq && slice.offset == 0 && row_stride() == cols && slice.col_stride == 1 &&
           weight.info().num_elements() == rows * cols;
  }
};

// The place where a matrix's bytes enter host memory: the constructor reads the weight span and
// the scales the matrix uses from the shard (pread: a shard that shrinks under the run is an
// InputError, never a SIGBUS), takes their digest, and checks and decodes the scales; decode()
// then works on the bytes read. Moving keeps the bytes; copying is not allowed.
class MatrixDecoder {
 public:
  // The weight bytes go into a buffer of the decoder's own...
  explicit MatrixDecoder(const EncodedMatrix& matrix);
  // ...into `buffer` (resized as needed: a thread that decodes many matrices passes the same one;
  // it must outlive the decoder)...
  MatrixDecoder(const EncodedMatrix& matrix, std::vector<std::byte>& buffer);
  // ...or into `destination`, at least weight_span() bytes (a device's pinned staging memory).
  MatrixDecoder(const EncodedMatrix& matrix, std::byte* destination);
  MatrixDecoder(MatrixDecoder&&) noexcept = default;
  MatrixDecoder(const MatrixDecoder&) = delete;
  MatrixDecoder& operator=(const MatrixDecoder&) = delete;
  MatrixDecoder& operator=(MatrixDecoder&&) = delete;

  // XXH64 (seed 0) of exactly the bytes read: the weight span, then the scale bytes used (the
  // whole scale tensor of an fp8 block-scaled weight; the e8m0 bytes of the matrix's own rows
  // for MXFP4; GPTQ's and AWQ's scales, qzeros and g_idx). The matrix's weight digest in journals,
  // slices and vindex.h5.
  std::uint64_t digest() const { return digest_; }
  // The weight span as read (what a device decodes).
  std::span<const std::byte> weight_bytes() const { return {weight_, weight_size_}; }

  // Writes rows [r0, r1) x columns [c0, c1) of the dequantized matrix to `out` (row-major with
  // leading dimension `ld`) and returns the float64 sum of squares of the values written.
  double decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, float* out, std::uint64_t ld) const;
  double decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, double* out, std::uint64_t ld) const;

  // The decoded, checked block scales of an fp8_block matrix ([ceil(rows/br), ceil(cols/bc)]
  // row-major; empty when the weight has none), for backends that decode on a device.
  const std::vector<float>& scales() const { return scales_; }
  // Raises the InputError that names the first NaN or Inf of the matrix (a device found one).
  [[noreturn]] void fail_non_finite() const { fail_non_finite(0, m_.rows, 0, m_.cols); }

 private:
  template <typename T>
  double decode_impl(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, T* out, std::uint64_t ld) const;
  [[noreturn]] void fail_non_finite(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1) const;
  std::uint64_t element_index(std::uint64_t r, std::uint64_t c) const {
    return m_.slice.offset + r * row_stride_ + c * m_.slice.col_stride;
  }
  float stored_value(std::uint64_t r, std::uint64_t c) const;  // before scaling
  // bitnet_packed: the 2-bit code (0, 1, 2; 3 never written) of element (r, c).
  float bitnet_code(std::uint64_t r, std::uint64_t c) const {
    const std::uint64_t packed_rows = m_.rows / 4;
    const auto byte = std::to_integer<unsigned>(*at((r % packed_rows) * m_.cols + c));
    return static_cast<float>((byte >> (2 * (r / packed_rows))) & 3u);
  }
  // gptq, awq: code minus zero point of element (r, c) = (output, input), and its scale.
  float int4_difference(std::uint64_t r, std::uint64_t c) const;
  float int4_scale(std::uint64_t r, std::uint64_t c) const { return scales_[group_of(c) * m_.rows + r]; }
  std::uint64_t group_of(std::uint64_t input) const { return groups_.empty() ? input / m_.group_size : groups_[input]; }
  void read_int4_companions(Xxh64& digest);
  void decode_gguf_row(std::uint64_t r, float* row) const;     // gguf_blocks: row r, all its columns
  float scale_of(std::uint64_t r, std::uint64_t c) const;      // 1 when unscaled
  // Byte `b` of the tensor, as read (b within the weight span).
  const std::byte* at(std::uint64_t b) const { return weight_ + (b - weight_begin_); }
  void read_and_check(std::byte* destination);

  const EncodedMatrix& m_;
  std::vector<std::byte> own_;  // the weight bytes when the decoder holds them itself
  const std::byte* weight_ = nullptr;
  std::uint64_t weight_begin_ = 0;
  std::uint64_t weight_size_ = 0;
  std::uint64_t digest_ = 0;
  WeightEncoding encoding_;
  std::uint64_t row_stride_ = 0;
  // fp8_block: [ceil(rows/br), ceil(cols/bc)] row-major; mxfp4: the e8m0 scales of elements
  // [32 * scale_base_, ...) of the tensor; empty when unscaled.
  std::vector<float> scales_;
  std::uint64_t scale_cols_ = 0;
  std::uint64_t scale_base_ = 0;
  // gguf_blocks: the ggml type, its block size (elements) and type size (bytes per block).
  std::uint32_t ggml_type_ = 0;
  std::uint64_t block_size_ = 1;
  std::uint64_t type_size_ = 1;
  float i2s_scale_ = 0.0f;  // I2_S: the tensor's scale
  // gptq, awq: scales_ is [groups, out] row-major; the zero points ([groups, out], unpacked, the
  // one of GPTQ v1 added back) and GPTQ's group of each input (g_idx).
  std::vector<std::uint8_t> zero_points_;
  std::vector<std::uint32_t> groups_;
};

}  // namespace vindex
