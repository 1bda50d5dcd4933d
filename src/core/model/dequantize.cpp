// Decoding of stored weights to float32 (see vindex/model/dequantize.hpp for the arithmetic contract).
#include "vindex/model/dequantize.hpp"

#include <array>
#include <bit>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/base/checksum.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"
#include "vindex/model/gguf_dequantize.hpp"

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

// e2m1: sign bit 3, exponent bits 2-1 (bias 1), mantissa bit 0; subnormal 0.5 at exponent 0.
constexpr std::array<float, 16> kFp4Table{0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

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

// "[3, 2, 1]": the position of flat element `flat` in a tensor of this shape.
std::string multi_index(const TensorInfo& info, std::uint64_t flat) {
  std::vector<std::uint64_t> index(info.shape.size());
  for (std::size_t d = info.shape.size(); d-- > 0;) {
    const std::uint64_t extent = info.shape[d] ? info.shape[d] : 1;
    index[d] = flat % extent;
    flat /= extent;
  }
  return fmt::format("[{}]", fmt::join(index, ", "));
}

}  // namespace

float fp8_e4m3_to_float(std::uint8_t code) { return kFp8Table[code]; }

float fp4_e2m1_to_float(std::uint8_t code) { return kFp4Table[code & 0x0F]; }

float e8m0_to_float(std::uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);  // 2^-127 is a float32 subnormal, exact
}

std::vector<double> decode_vector(const TensorView& tensor) {
  const TensorInfo& info = tensor.info();
  if (!is_float_dtype(info.dtype))
    throw InputError(tensor.file(), info.name, fmt::format("dtype {} is not F32, BF16 or F16", dtype_name(info.dtype)));
  const std::uint64_t n = info.num_elements();
  std::vector<double> values(n);
  const std::vector<std::byte> raw = tensor.read_all();
  const std::byte* base = raw.data();
  for (std::uint64_t i = 0; i < n; ++i) {
    const float v = element_to_float(info.dtype, base, i);
    if (!std::isfinite(v)) throw InputError(tensor.file(), info.name, fmt::format("value [{}] is {}", i, describe(v)));
    values[i] = v;
  }
  return values;
}

float bf16_to_float(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

float round_to_dtype(DType dtype, float v) {
  if (dtype == DType::BF16) {  // round to nearest even, as torch rounds a float32 to bfloat16
    if (std::isnan(v)) return v;
    std::uint32_t bits = std::bit_cast<std::uint32_t>(v);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return std::bit_cast<float>(bits & 0xFFFF0000u);
  }
  if (dtype == DType::F16) return static_cast<float>(static_cast<_Float16>(v));  // IEEE rounding, overflow to Inf
  return v;
}

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

std::pair<std::uint64_t, std::uint64_t> EncodedMatrix::weight_span() const {
  if (rows == 0 || cols == 0) return {0, 0};
  const std::uint64_t first = slice.offset;
  const std::uint64_t last = slice.offset + (rows - 1) * row_stride() + (cols - 1) * slice.col_stride;
  if (encoding == WeightEncoding::mxfp4) return {first / 2, last / 2 + 1};
  if (encoding == WeightEncoding::bitnet_packed) return {0, rows / 4 * cols};  // the whole packed tensor
  if (encoding == WeightEncoding::gptq || encoding == WeightEncoding::awq) return {0, weight.info().byte_size()};
  if (encoding == WeightEncoding::gguf_blocks) {
    const GgmlTypeTraits* t = ggml_type_traits(weight.info().ggml_type.value_or(0));
    if (!t) return {0, 0};
    return {first / t->block_size * t->type_size, (last + t->block_size) / t->block_size * t->type_size};
  }
  const std::uint64_t bytes = std::max<std::uint64_t>(dtype_bits(weight.info().dtype) / 8, 1);
  return {first * bytes, (last + 1) * bytes};
}

void EncodedMatrix::will_need() const noexcept {
  const auto [begin, end] = weight_span();
  weight.will_need(begin, end);
}

MatrixDecoder::MatrixDecoder(const EncodedMatrix& matrix) : MatrixDecoder(matrix, own_) {}

MatrixDecoder::MatrixDecoder(const EncodedMatrix& matrix, std::vector<std::byte>& buffer)
    : m_(matrix),
      // An F8_E4M3 weight is always block-scaled (its encoding need not be spelled out).
      encoding_(matrix.weight.info().dtype == DType::F8_E4M3 ? WeightEncoding::fp8_block : matrix.encoding),
      row_stride_(matrix.row_stride()) {
  const auto [begin, end] = m_.weight_span();
  if (buffer.size() < end - begin) buffer.resize(end - begin);
  read_and_check(buffer.data());
}

MatrixDecoder::MatrixDecoder(const EncodedMatrix& matrix, std::byte* destination)
    : m_(matrix),
      encoding_(matrix.weight.info().dtype == DType::F8_E4M3 ? WeightEncoding::fp8_block : matrix.encoding),
      row_stride_(matrix.row_stride()) {
  read_and_check(destination);
}

void MatrixDecoder::read_and_check(std::byte* destination) {
  const TensorInfo& info = m_.weight.info();
  if (m_.rows == 0 || m_.cols == 0) throw InternalError(fmt::format("tensor '{}': empty matrix", info.name));
  // The last element the matrix reads must lie inside the tensor.
  const std::uint64_t elements = encoding_ == WeightEncoding::mxfp4           ? info.byte_size() * 2
                                 : encoding_ == WeightEncoding::bitnet_packed ? info.num_elements() * 4
                                 : encoding_ == WeightEncoding::gptq || encoding_ == WeightEncoding::awq
                                     ? info.num_elements() * 8
                                     : info.num_elements();
  const std::uint64_t last = element_index(m_.rows - 1, m_.cols - 1);
  if (last >= elements || (encoding_ == WeightEncoding::fp8_block && !m_.is_whole_tensor()))
    throw InternalError(fmt::format("tensor '{}' does not hold a {}x{} matrix at element {} (strides {}, {})", info.name,
                                    m_.rows, m_.cols, m_.slice.offset, row_stride_, m_.slice.col_stride));
  switch (encoding_) {
    case WeightEncoding::plain:
      if (!is_float_dtype(info.dtype))
        throw InternalError(fmt::format("no plain decoder for dtype {} of '{}'", dtype_name(info.dtype), info.name));
      break;
    case WeightEncoding::fp8_block:
      if (info.dtype != DType::F8_E4M3 || !m_.scale)
        throw InputError(m_.weight.file(), info.name, "F8_E4M3 weight has no block scale");
      break;
    case WeightEncoding::gguf_blocks: {
      const GgmlTypeTraits* t = info.ggml_type ? ggml_type_traits(*info.ggml_type) : nullptr;
      if (!t) throw InternalError(fmt::format("'{}' is not a GGUF block tensor", info.name));
      require_gguf_dequantizable(t->id, m_.weight.file(), info.name);
      ggml_type_ = t->id;
      block_size_ = t->block_size;
      type_size_ = t->type_size;
      if (ggml_type_ == kGgmlTypeI2S && info.byte_size() != info.num_elements() / 4 + kI2sTrailerBytes)
        throw InternalError(fmt::format("'{}': I2_S tensor of {} bytes for {} values", info.name, info.byte_size(),
                                        info.num_elements()));
      // Whole rows of whole blocks: a matrix (or one expert of a fused tensor) starts and its rows
      // start on a block boundary.
      if (m_.slice.col_stride != 1 || m_.slice.transposed || m_.slice.offset % block_size_ || row_stride_ % block_size_ ||
          m_.cols % block_size_)
        throw InternalError(fmt::format("'{}': a {}x{} matrix at element {} (row stride {}) is not whole {} blocks of {}",
                                        info.name, m_.rows, m_.cols, m_.slice.offset, row_stride_, t->name, block_size_));
      break;
    }
    case WeightEncoding::mxfp4:
      if (info.dtype != DType::U8 || !m_.scale || m_.scale->info().dtype != DType::U8 || m_.slice.col_stride != 1)
        throw InternalError(fmt::format("'{}' is not a U8 MXFP4 block tensor with U8 scales", info.name));
      break;
    case WeightEncoding::bitnet_packed:
      if (info.dtype != DType::U8 || !m_.scale || m_.scale->info().num_elements() != 1 || m_.slice.offset != 0 ||
          m_.slice.col_stride != 1 || m_.slice.transposed || m_.rows % 4 != 0 ||
          info.shape != std::vector<std::uint64_t>{m_.rows / 4, m_.cols})
        throw InternalError(fmt::format("'{}' is not a packed BitNet [{}, {}] U8 tensor with one scale", info.name,
                                        m_.rows / 4, m_.cols));
      break;
    case WeightEncoding::gptq:
    case WeightEncoding::awq: {
      // rows x cols = out x in, the matrix as the model applies it; the qweight is [in/8, out] (GPTQ)
      // or [in, out/8] (AWQ), its companions checked by the layout (layout.cpp) and again here.
      const bool gptq = encoding_ == WeightEncoding::gptq;
      const std::vector<std::uint64_t> shape = gptq ? std::vector<std::uint64_t>{m_.cols / 8, m_.rows}
                                                    : std::vector<std::uint64_t>{m_.cols, m_.rows / 8};
      if (info.dtype != DType::I32 || info.shape != shape || !m_.scale || !m_.zeros || m_.group_size == 0 ||
          m_.slice.offset != 0 || m_.slice.col_stride != 1 || m_.slice.transposed || m_.rows % 8 || m_.cols % 8 ||
          (!gptq && m_.cols % m_.group_size))
        throw InternalError(fmt::format("'{}' is not a {} qweight of a {}x{} matrix with its scales and zeros", info.name,
                                        gptq ? "GPTQ" : "AWQ", m_.rows, m_.cols));
      break;
    }
  }

  // The weight bytes: read once, digested as they arrive.
  const auto [begin, end] = m_.weight_span();
  weight_begin_ = begin;
  weight_size_ = end - begin;
  m_.weight.read(begin, end, destination);
  weight_ = destination;
  Xxh64 digest;
  digest.update(std::span<const std::byte>(weight_, weight_size_));
  if (encoding_ == WeightEncoding::bitnet_packed) {  // the one scale BitLinear divides by
    const std::vector<std::byte> raw = m_.scale->read_all();
    digest.update(raw);
    scales_.assign(1, element_to_float(m_.scale->info().dtype, raw.data(), 0));
  }
  if (encoding_ == WeightEncoding::gptq || encoding_ == WeightEncoding::awq) read_int4_companions(digest);
  if (encoding_ == WeightEncoding::gguf_blocks && ggml_type_ == kGgmlTypeI2S) {
    // The tensor's one scale, after its codes.
    std::array<std::byte, 4> raw{};
    const std::uint64_t at_byte = info.num_elements() / 4;
    m_.weight.read(at_byte, at_byte + 4, raw.data());
    digest.update(raw);
    i2s_scale_ = std::bit_cast<float>(raw);
  }

  if (encoding_ == WeightEncoding::fp8_block) {
    const TensorView& scale = *m_.scale;
    const std::uint64_t n = scale.info().num_elements();
    scale_cols_ = (m_.cols + m_.block_cols - 1) / m_.block_cols;
    if (n != ((m_.rows + m_.block_rows - 1) / m_.block_rows) * scale_cols_)
      throw InputError(scale.file(), scale.name(), "block scale has the wrong number of elements");
    const std::vector<std::byte> raw = scale.read_all();
    digest.update(raw);
    scales_.resize(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      scales_[i] = element_to_float(scale.info().dtype, raw.data(), i);
      if (!std::isfinite(scales_[i]))
        throw InputError(scale.file(), scale.name(),
                         fmt::format("block scale [{}, {}] is {}", i / scale_cols_, i % scale_cols_, describe(scales_[i])));
    }
  } else if (encoding_ == WeightEncoding::mxfp4) {
    // Only the scales of this matrix's own rows: a fused tensor holds every expert's, and the
    // rows of an interleaved gate alternate with those of its up projection.
    const TensorView& scale = *m_.scale;
    scale_base_ = m_.slice.offset / 32;
    const std::uint64_t scale_end = last / 32 + 1;
    if (scale_end > scale.info().num_elements() || scale.info().num_elements() * 32 != elements || m_.slice.offset % 32 ||
        row_stride_ % 32 || m_.cols % 32)
      throw InputError(scale.file(), scale.name(), "MXFP4 scales do not cover the blocks (one per 32 values)");
    std::vector<std::byte> raw(scale_end - scale_base_);
    scale.read(scale_base_, scale_end, raw.data());
    digest.update(raw);
    scales_.assign(scale_end - scale_base_, std::numeric_limits<float>::quiet_NaN());  // others' entries: never read
    for (std::uint64_t r = 0; r < m_.rows; ++r)
      for (std::uint64_t i = element_index(r, 0) / 32; i < (element_index(r, 0) + m_.cols) / 32; ++i) {
        const auto code = std::to_integer<std::uint8_t>(raw[i - scale_base_]);
        if (code == 0xFF)
          throw InputError(scale.file(), scale.name(), fmt::format("e8m0 scale {} is 255 (NaN)", multi_index(scale.info(), i)));
        scales_[i - scale_base_] = e8m0_to_float(code);
      }
  }
  digest_ = digest.value();
}

// AWQ's GEMM packing puts output 8 c + j of a word's eight in nibble kAwqNibble[j]: the inverse of
// the order [0, 2, 4, 6, 1, 3, 5, 7] its packer writes (AutoAWQ's AWQ_REVERSE_ORDER).
constexpr std::array<unsigned, 8> kAwqNibble{0, 4, 1, 5, 2, 6, 3, 7};

void MatrixDecoder::read_int4_companions(Xxh64& digest) {
  const bool gptq = encoding_ == WeightEncoding::gptq;
  const std::uint64_t out = m_.rows, in = m_.cols;
  const TensorView& scale = *m_.scale;
  const TensorView& zeros = *m_.zeros;
  const std::uint64_t groups = scale.info().shape.empty() ? 0 : scale.info().shape[0];
  if (scale.info().shape != std::vector<std::uint64_t>{groups, out} || !is_float_dtype(scale.info().dtype))
    throw InputError(scale.file(), scale.name(), fmt::format("scales are not [groups, {}] of F16, BF16 or F32", out));
  if (zeros.info().shape != std::vector<std::uint64_t>{groups, out / 8} || zeros.info().dtype != DType::I32)
    throw InputError(zeros.file(), zeros.name(), fmt::format("qzeros are not [{}, {}] of I32", groups, out / 8));
  if (!gptq || !m_.g_idx) {
    if ((in + m_.group_size - 1) / m_.group_size != groups)
      throw InputError(scale.file(), scale.name(),
                       fmt::format("{} groups of scales for {} inputs in groups of {}", groups, in, m_.group_size));
  }

  const std::vector<std::byte> scale_raw = scale.read_all();
  digest.update(scale_raw);
  scales_.resize(groups * out);
  for (std::uint64_t i = 0; i < scales_.size(); ++i) {
    scales_[i] = element_to_float(scale.info().dtype, scale_raw.data(), i);
    if (!std::isfinite(scales_[i]))
      throw InputError(scale.file(), scale.name(), fmt::format("scale [{}, {}] is {}", i / out, i % out, describe(scales_[i])));
  }

  // The zero points, unpacked to [groups, out]. GPTQ v1 stored zero - 1 packed as words; its loaders
  // (GPTQModel's convert_gptq_v1_to_v2) add 0x11111111 to each int32 word, carries included.
  const std::vector<std::byte> zero_raw = zeros.read_all();
  digest.update(zero_raw);
  zero_points_.resize(groups * out);
  for (std::uint64_t g = 0; g < groups; ++g)
    for (std::uint64_t w = 0; w < out / 8; ++w) {
      std::uint32_t word = load<std::uint32_t>(zero_raw.data() + 4 * (g * (out / 8) + w));
      if (m_.zeros_minus_one) word += 0x11111111u;
      for (unsigned j = 0; j < 8; ++j)
        zero_points_[g * out + 8 * w + j] = static_cast<std::uint8_t>((word >> (4 * (gptq ? j : kAwqNibble[j]))) & 15u);
    }

  groups_.clear();
  if (gptq && m_.g_idx) {
    const TensorView& g_idx = *m_.g_idx;
    if (g_idx.info().shape != std::vector<std::uint64_t>{in} || g_idx.info().dtype != DType::I32)
      throw InputError(g_idx.file(), g_idx.name(), fmt::format("g_idx is not [{}] of I32", in));
    const std::vector<std::byte> raw = g_idx.read_all();
    digest.update(raw);
    groups_.resize(in);
    for (std::uint64_t i = 0; i < in; ++i) {
      const auto g = load<std::int32_t>(raw.data() + 4 * i);
      if (g < 0 || static_cast<std::uint64_t>(g) >= groups)
        throw InputError(g_idx.file(), g_idx.name(),
                         fmt::format("g_idx [{}] is {}, outside the {} groups of the scales", i, g, groups));
      // Without act-order, GPTQ's groups are consecutive runs of group_size inputs; another map
      // means the config and the tensors disagree.
      if (!m_.desc_act && static_cast<std::uint64_t>(g) != i / m_.group_size)
        throw InputError(g_idx.file(), g_idx.name(),
                         fmt::format("g_idx [{}] is {}, but quantization_config.desc_act is false, which makes it "
                                     "{} (input / group_size {})",
                                     i, g, i / m_.group_size, m_.group_size));
      groups_[i] = static_cast<std::uint32_t>(g);
    }
  }
}

float MatrixDecoder::int4_difference(std::uint64_t r, std::uint64_t c) const {
  const std::uint64_t out = m_.rows;
  std::uint32_t word = 0;
  unsigned nibble = 0;
  if (encoding_ == WeightEncoding::gptq) {  // [in/8, out]: input c in nibble c % 8 of word row c / 8
    word = load<std::uint32_t>(at(4 * ((c / 8) * out + r)));
    nibble = static_cast<unsigned>(c % 8);
  } else {  // AWQ [in, out/8]: output r in nibble kAwqNibble[r % 8] of word r / 8 of row c
    word = load<std::uint32_t>(at(4 * (c * (out / 8) + r / 8)));
    nibble = kAwqNibble[r % 8];
  }
  const auto q = static_cast<int>((word >> (4 * nibble)) & 15u);
  return static_cast<float>(q - static_cast<int>(zero_points_[group_of(c) * out + r]));
}

double MatrixDecoder::decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, float* out,
                             std::uint64_t ld) const {
  return decode_impl(r0, r1, c0, c1, out, ld);
}

double MatrixDecoder::decode(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, double* out,
                             std::uint64_t ld) const {
  return decode_impl(r0, r1, c0, c1, out, ld);
}

float MatrixDecoder::stored_value(std::uint64_t r, std::uint64_t c) const {
  const std::uint64_t i = element_index(r, c);
  if (encoding_ == WeightEncoding::gguf_blocks) {  // the error path only: the row decoded again
    std::vector<float> row(m_.cols);
    decode_gguf_row(r, row.data());
    return row[c];
  }
  const DType dtype = m_.weight.info().dtype;
  if (encoding_ == WeightEncoding::bitnet_packed) return bitnet_code(r, c) - 1.0f;
  if (encoding_ == WeightEncoding::gptq || encoding_ == WeightEncoding::awq) return int4_difference(r, c);
  if (encoding_ != WeightEncoding::mxfp4) {
    const std::uint64_t size = std::max<std::uint64_t>(dtype_bits(dtype) / 8, 1);
    return element_to_float(dtype, at(i * size), 0);
  }
  const auto byte = std::to_integer<std::uint8_t>(*at(i / 2));
  return kFp4Table[(i & 1) ? byte >> 4 : byte & 0x0F];  // low nibble first
}

void MatrixDecoder::decode_gguf_row(std::uint64_t r, float* row) const {
  const std::byte* blocks = at(element_index(r, 0) / block_size_ * type_size_);
  if (ggml_type_ == kGgmlTypeI2S)
    dequantize_i2s_row(blocks, m_.cols, i2s_scale_, row);
  else
    dequantize_gguf_row(ggml_type_, blocks, m_.cols, row, m_.weight.file(), m_.weight.name());
}

float MatrixDecoder::scale_of(std::uint64_t r, std::uint64_t c) const {
  switch (encoding_) {
    case WeightEncoding::plain:
    case WeightEncoding::gguf_blocks: return 1.0f;
    case WeightEncoding::fp8_block: return scales_[(r / m_.block_rows) * scale_cols_ + c / m_.block_cols];
    case WeightEncoding::mxfp4: return scales_[element_index(r, c) / 32 - scale_base_];
    case WeightEncoding::bitnet_packed: return 1.0f / scales_[0];  // (the decoder divides; the error path only)
    case WeightEncoding::gptq:
    case WeightEncoding::awq: return int4_scale(r, c);
  }
  return 1.0f;
}

template <typename T>
double MatrixDecoder::decode_impl(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1, T* out,
                                  std::uint64_t ld) const {
  VINDEX_ASSERT(r0 <= r1 && r1 <= m_.rows && c0 <= c1 && c1 <= m_.cols && c1 - c0 <= ld);
  const DType dtype = m_.weight.info().dtype;
  const std::uint64_t cs = m_.slice.col_stride;
  double sum_sq = 0.0;
  // Decodes columns [c0, c1) of row r with `to_float(element index)`.
  const auto decode_row = [&](std::uint64_t r, auto&& to_float) {
    T* row_out = out + (r - r0) * ld - c0;
    const std::uint64_t row_start = element_index(r, 0);
    double row_sq = 0.0;
    for (std::uint64_t c = c0; c < c1; ++c) {
      const float v = to_float(row_start + c * cs);
      row_out[c] = static_cast<T>(v);
      row_sq += static_cast<double>(v) * static_cast<double>(v);
    }
    return row_sq;
  };
  if (encoding_ == WeightEncoding::gguf_blocks) {
    // A row at a time: ggml's blocks span the row, decoded whole, the columns asked copied out.
    std::vector<float> row(m_.cols);
    for (std::uint64_t r = r0; r < r1; ++r) {
      decode_gguf_row(r, row.data());
      T* row_out = out + (r - r0) * ld;
      double row_sq = 0.0;
      for (std::uint64_t c = c0; c < c1; ++c) {
        const float v = row[c];
        row_out[c - c0] = static_cast<T>(v);
        row_sq += static_cast<double>(v) * static_cast<double>(v);
      }
      sum_sq += row_sq;
    }
    if (!std::isfinite(sum_sq)) fail_non_finite(r0, r1, c0, c1);
    return sum_sq;
  }
  for (std::uint64_t r = r0; r < r1; ++r) {
    if (encoding_ == WeightEncoding::fp8_block) {
      const auto* codes = reinterpret_cast<const std::uint8_t*>(at(r * m_.cols));
      const float* scale_row = scales_.data() + (r / m_.block_rows) * scale_cols_;
      T* row_out = out + (r - r0) * ld - c0;
      double row_sq = 0.0;
      // One scale per block of columns, hoisted out of the inner loop.
      for (std::uint64_t cb = c0; cb < c1;) {
        const std::uint64_t block = cb / m_.block_cols;
        const std::uint64_t end = std::min(c1, (block + 1) * m_.block_cols);
        const float s = scale_row[block];
        if (m_.product_dtype == DType::F32) {
          for (std::uint64_t c = cb; c < end; ++c) {
            const float v = kFp8Table[codes[c]] * s;
            row_out[c] = static_cast<T>(v);
            row_sq += static_cast<double>(v) * static_cast<double>(v);
          }
        } else {  // the product in the scale's dtype (compressed-tensors)
          for (std::uint64_t c = cb; c < end; ++c) {
            const float v = round_to_dtype(m_.product_dtype, kFp8Table[codes[c]] * s);
            row_out[c] = static_cast<T>(v);
            row_sq += static_cast<double>(v) * static_cast<double>(v);
          }
        }
        cb = end;
      }
      sum_sq += row_sq;
      continue;
    }
    if (encoding_ == WeightEncoding::bitnet_packed) {
      // transformers' unpack_weights, then BitLinear's division by the scale: (code - 1) / scale.
      const float s = scales_[0];
      T* row_out = out + (r - r0) * ld - c0;
      double row_sq = 0.0;
      for (std::uint64_t c = c0; c < c1; ++c) {
        const float v = (bitnet_code(r, c) - 1.0f) / s;
        row_out[c] = static_cast<T>(v);
        row_sq += static_cast<double>(v) * static_cast<double>(v);
      }
      sum_sq += row_sq;
      continue;
    }
    if (encoding_ == WeightEncoding::gptq || encoding_ == WeightEncoding::awq) {
      // (q - z) * s: a 4-bit difference times a 16-bit scale is exact in float32, then rounded once
      // to the scales' dtype, as the loaders' fp16 (bf16) tensor product is.
      const DType product = m_.scale->info().dtype;
      T* row_out = out + (r - r0) * ld - c0;
      double row_sq = 0.0;
      for (std::uint64_t c = c0; c < c1; ++c) {
        const float v = round_to_dtype(product, int4_difference(r, c) * int4_scale(r, c));
        row_out[c] = static_cast<T>(v);
        row_sq += static_cast<double>(v) * static_cast<double>(v);
      }
      sum_sq += row_sq;
      continue;
    }
    if (encoding_ == WeightEncoding::mxfp4) {
      sum_sq += decode_row(r, [&](std::uint64_t i) {
        const auto b = std::to_integer<std::uint8_t>(*at(i / 2));
        return kFp4Table[(i & 1) ? b >> 4 : b & 0x0F] * scales_[i / 32 - scale_base_];
      });
      continue;
    }
    switch (dtype) {
      case DType::F32: sum_sq += decode_row(r, [&](std::uint64_t i) { return load<float>(at(4 * i)); }); break;
      case DType::BF16:
        sum_sq += decode_row(r, [&](std::uint64_t i) { return bf16_to_float(load<std::uint16_t>(at(2 * i))); });
        break;
      case DType::F16:
        sum_sq += decode_row(r, [&](std::uint64_t i) { return f16_to_float(load<std::uint16_t>(at(2 * i))); });
        break;
      default: throw InternalError(fmt::format("no decoder for dtype {}", dtype_name(dtype)));
    }
  }
  // A NaN or Inf anywhere (a NaN code, an Inf stored, or a value times its scale overflowing
  // float32) makes the sum non-finite; only then are the values searched for the culprit.
  if (!std::isfinite(sum_sq)) fail_non_finite(r0, r1, c0, c1);
  return sum_sq;
}

void MatrixDecoder::fail_non_finite(std::uint64_t r0, std::uint64_t r1, std::uint64_t c0, std::uint64_t c1) const {
  const TensorInfo& info = m_.weight.info();
  // Positions are the matrix's own [row, column] as stored, plus the flat element of a fused tensor.
  const auto where = [&](std::uint64_t r, std::uint64_t c) {
    return m_.is_whole_tensor() ? fmt::format("weight [{}, {}]", r, c)
                                : fmt::format("weight [{}, {}] of this matrix (element {} of the tensor)", r, c, element_index(r, c));
  };
  for (std::uint64_t r = r0; r < r1; ++r)
    for (std::uint64_t c = c0; c < c1; ++c) {
      const float stored = stored_value(r, c);
      if (!std::isfinite(stored))
        throw InputError(m_.weight.file(), info.name, fmt::format("{} is {}", where(r, c), describe(stored)));
      const DType product = encoding_ == WeightEncoding::fp8_block ? m_.product_dtype
                            : encoding_ == WeightEncoding::gptq || encoding_ == WeightEncoding::awq
                                ? m_.scale->info().dtype
                                : DType::F32;
      const float scaled = round_to_dtype(product, stored * scale_of(r, c));
      if (!std::isfinite(scaled))
        throw InputError(m_.weight.file(), info.name,
                         fmt::format("{} is {} after applying its scale", where(r, c), describe(scaled)));
    }
  throw InternalError(fmt::format("non-finite sum of squares of finite weights of '{}'", info.name));
}

}  // namespace vindex
