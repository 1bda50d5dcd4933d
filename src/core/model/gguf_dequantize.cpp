// ggml's block types decoded to float32, following llama.cpp's dequantize_row_* in
// ggml/src/ggml-quants.c (ggml-org/llama.cpp) loop for loop, so that every value is the same float32
// operations in the same order: see vindex/model/gguf_dequantize.hpp. Block layouts are ggml's
// (ggml/src/ggml-common.h); all fields little-endian. This file is compiled with
// -ffp-contract=off (src/CMakeLists.txt): a fused multiply-add would round differently from ggml.
#include "vindex/model/gguf_dequantize.hpp"

#include <array>
#include <cstring>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"
#include "vindex/model/dequantize.hpp"

namespace vindex {
namespace {

constexpr int QK_K = 256;

// Type ids (ggml.h's enum ggml_type).
enum : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kIQ4_NL = 20,
  kIQ4_XS = 23,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kQ1_0 = 41,
};

using u8 = std::uint8_t;

u8 byte_at(const std::byte* p, std::size_t i) { return std::to_integer<u8>(p[i]); }
std::uint16_t u16_at(const std::byte* p, std::size_t i) {
  std::uint16_t v;
  std::memcpy(&v, p + i, 2);
  return v;
}
std::uint32_t u32_at(const std::byte* p, std::size_t i) {
  std::uint32_t v;
  std::memcpy(&v, p + i, 4);
  return v;
}
// GGML_FP16_TO_FP32: exact widening.
float fp16_at(const std::byte* p, std::size_t i) { return f16_to_float(u16_at(p, i)); }

// kvalues_iq4nl (ggml-common.h).
constexpr std::array<std::int8_t, 16> kIq4nl{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// kvalues_mxfp4 (ggml-common.h): e2m1 values doubled; the scale is halved to match.
constexpr std::array<std::int8_t, 16> kMxfp4{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// ggml_e8m0_to_fp32_half (ggml-impl.h): 2^(e - 128) as float32 bits; e = 255 gives 2^127 (ggml has
// no NaN here, unlike the OCP e8m0 of the safetensors MXFP4 path).
float e8m0_half(u8 e) {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// block_q4_0: d (fp16), qs[16].
void block_q4_0(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  for (int j = 0; j < 16; ++j) {
    const int x0 = (byte_at(x, 2 + j) & 0x0F) - 8;
    const int x1 = (byte_at(x, 2 + j) >> 4) - 8;
    y[j] = static_cast<float>(x0) * d;
    y[j + 16] = static_cast<float>(x1) * d;
  }
}

// block_q4_1: d, m (fp16), qs[16].
void block_q4_1(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const float m = fp16_at(x, 2);
  for (int j = 0; j < 16; ++j) {
    const int x0 = byte_at(x, 4 + j) & 0x0F;
    const int x1 = byte_at(x, 4 + j) >> 4;
    y[j] = static_cast<float>(x0) * d + m;
    y[j + 16] = static_cast<float>(x1) * d + m;
  }
}

// block_q5_0: d (fp16), qh[4] (bit j: the fifth bit of element j), qs[16].
void block_q5_0(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const std::uint32_t qh = u32_at(x, 2);
  for (int j = 0; j < 16; ++j) {
    const u8 xh_0 = static_cast<u8>(((qh >> (j + 0)) << 4) & 0x10);
    const u8 xh_1 = static_cast<u8>((qh >> (j + 12)) & 0x10);
    const int x0 = ((byte_at(x, 6 + j) & 0x0F) | xh_0) - 16;
    const int x1 = ((byte_at(x, 6 + j) >> 4) | xh_1) - 16;
    y[j] = static_cast<float>(x0) * d;
    y[j + 16] = static_cast<float>(x1) * d;
  }
}

// block_q5_1: d, m (fp16), qh[4], qs[16].
void block_q5_1(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const float m = fp16_at(x, 2);
  const std::uint32_t qh = u32_at(x, 4);
  for (int j = 0; j < 16; ++j) {
    const u8 xh_0 = static_cast<u8>(((qh >> (j + 0)) << 4) & 0x10);
    const u8 xh_1 = static_cast<u8>((qh >> (j + 12)) & 0x10);
    const int x0 = (byte_at(x, 8 + j) & 0x0F) | xh_0;
    const int x1 = (byte_at(x, 8 + j) >> 4) | xh_1;
    y[j] = static_cast<float>(x0) * d + m;
    y[j + 16] = static_cast<float>(x1) * d + m;
  }
}

// block_q8_0: d (fp16), qs[32] (int8).
void block_q8_0(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(byte_at(x, 2 + j))) * d;
}

// block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin (fp16).
void block_q2_k(const std::byte* x, float* y) {
  const float d = fp16_at(x, 80);
  const float min = fp16_at(x, 82);
  const std::byte* q = x + 16;
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      u8 sc = byte_at(x, static_cast<std::size_t>(is++));
      float dl = d * static_cast<float>(sc & 0xF);
      float ml = min * static_cast<float>(sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((byte_at(q, l) >> shift) & 3) - ml;
      sc = byte_at(x, static_cast<std::size_t>(is++));
      dl = d * static_cast<float>(sc & 0xF);
      ml = min * static_cast<float>(sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((byte_at(q, l + 16) >> shift) & 3) - ml;
      shift += 2;
    }
    q += 32;
  }
}

// block_q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales), d (fp16).
void block_q3_k(const std::byte* x, float* y) {
  const float d_all = fp16_at(x, 108);
  const std::byte* hm = x;
  const std::byte* q = x + 32;
  constexpr std::uint32_t kmask1 = 0x03030303;
  constexpr std::uint32_t kmask2 = 0x0f0f0f0f;
  std::uint32_t aux[4];
  std::memcpy(aux, x + 96, 12);
  const std::uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  std::int8_t scales[16];
  std::memcpy(scales, aux, 16);
  int is = 0;
  u8 m = 1;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      float dl = d_all * static_cast<float>(scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * static_cast<float>(static_cast<std::int8_t>((byte_at(q, l) >> shift) & 3) -
                                       ((byte_at(hm, l) & m) ? 0 : 4));
      dl = d_all * static_cast<float>(scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * static_cast<float>(static_cast<std::int8_t>((byte_at(q, l + 16) >> shift) & 3) -
                                       ((byte_at(hm, l + 16) & m) ? 0 : 4));
      shift += 2;
      m = static_cast<u8>(m << 1);
    }
    q += 32;
  }
}

// get_scale_min_k4: the j-th six-bit scale and min of Q4_K/Q5_K's 12 scale bytes.
void get_scale_min_k4(int j, const std::byte* q, u8* d, u8* m) {
  if (j < 4) {
    *d = byte_at(q, j) & 63;
    *m = byte_at(q, j + 4) & 63;
  } else {
    *d = static_cast<u8>((byte_at(q, j + 4) & 0xF) | ((byte_at(q, j - 4) >> 6) << 4));
    *m = static_cast<u8>((byte_at(q, j + 4) >> 4) | ((byte_at(q, j - 0) >> 6) << 4));
  }
}

// block_q4_K: d, dmin (fp16), scales[12], qs[128].
void block_q4_k(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const float min = fp16_at(x, 2);
  const std::byte* scales = x + 4;
  const std::byte* q = x + 16;
  int is = 0;
  u8 sc, m;
  for (int j = 0; j < QK_K; j += 64) {
    get_scale_min_k4(is + 0, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = min * static_cast<float>(m);
    get_scale_min_k4(is + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = min * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(byte_at(q, l) & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(byte_at(q, l) >> 4) - m2;
    q += 32;
    is += 2;
  }
}

// block_q5_K: d, dmin (fp16), scales[12], qh[32], qs[128].
void block_q5_k(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const float min = fp16_at(x, 2);
  const std::byte* scales = x + 4;
  const std::byte* qh = x + 16;
  const std::byte* ql = x + 48;
  int is = 0;
  u8 sc, m;
  u8 u1 = 1, u2 = 2;
  for (int j = 0; j < QK_K; j += 64) {
    get_scale_min_k4(is + 0, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = min * static_cast<float>(m);
    get_scale_min_k4(is + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = min * static_cast<float>(m);
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((byte_at(ql, l) & 0xF) + (byte_at(qh, l) & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((byte_at(ql, l) >> 4) + (byte_at(qh, l) & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 = static_cast<u8>(u1 << 2);
    u2 = static_cast<u8>(u2 << 2);
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d (fp16).
void block_q6_k(const std::byte* x, float* y) {
  const float d = fp16_at(x, 208);
  const std::byte* ql = x;
  const std::byte* qh = x + 128;
  const std::byte* sc = x + 192;
  for (int n = 0; n < QK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<std::int8_t>((byte_at(ql, l + 0) & 0xF) | (((byte_at(qh, l) >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<std::int8_t>((byte_at(ql, l + 32) & 0xF) | (((byte_at(qh, l) >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<std::int8_t>((byte_at(ql, l + 0) >> 4) | (((byte_at(qh, l) >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<std::int8_t>((byte_at(ql, l + 32) >> 4) | (((byte_at(qh, l) >> 6) & 3) << 4)) - 32;
      const auto s = [&](int k) { return static_cast<float>(static_cast<std::int8_t>(byte_at(sc, k))); };
      y[l + 0] = d * s(is + 0) * static_cast<float>(q1);
      y[l + 32] = d * s(is + 2) * static_cast<float>(q2);
      y[l + 64] = d * s(is + 4) * static_cast<float>(q3);
      y[l + 96] = d * s(is + 6) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// block_iq4_nl: d (fp16), qs[16] (indices into kvalues_iq4nl).
void block_iq4_nl(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4nl[byte_at(x, 2 + j) & 0xf]);
    y[j + 16] = d * static_cast<float>(kIq4nl[byte_at(x, 2 + j) >> 4]);
  }
}

// block_iq4_xs: d (fp16), scales_h (uint16), scales_l[4], qs[128].
void block_iq4_xs(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const std::uint16_t scales_h = u16_at(x, 2);
  const std::byte* qs = x + 8;
  for (int ib = 0; ib < QK_K / 32; ++ib) {
    const int ls = ((byte_at(x, 4 + ib / 2) >> 4 * (ib % 2)) & 0xf) | (((scales_h >> 2 * ib) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j + 0] = dl * static_cast<float>(kIq4nl[byte_at(qs, j) & 0xf]);
      y[j + 16] = dl * static_cast<float>(kIq4nl[byte_at(qs, j) >> 4]);
    }
    y += 32;
    qs += 16;
  }
}

// block_tq1_0: qs[48] (five base-3 digits a byte), qh[4] (four), d (fp16).
void block_tq1_0(const std::byte* x, float* y) {
  constexpr u8 pow3[6] = {1, 3, 9, 27, 81, 243};
  const float d = fp16_at(x, 52);
  const auto digit = [&](u8 byte, int n) {
    const u8 q = static_cast<u8>(byte * pow3[n]);
    const std::int16_t xi = static_cast<std::int16_t>((static_cast<std::uint16_t>(q) * 3) >> 8);
    return static_cast<float>(xi - 1) * d;
  };
  for (int j = 0; j < 32; j += 32)
    for (int n = 0; n < 5; ++n)
      for (int m = 0; m < 32; ++m) *y++ = digit(byte_at(x, j + m), n);
  for (int j = 32; j < 48; j += 16)
    for (int n = 0; n < 5; ++n)
      for (int m = 0; m < 16; ++m) *y++ = digit(byte_at(x, j + m), n);
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 4; ++j) *y++ = digit(byte_at(x, 48 + j), n);
}

// block_tq2_0: qs[64] (four 2-bit codes a byte, 0..2 meaning -1..1), d (fp16).
void block_tq2_0(const std::byte* x, float* y) {
  const float d = fp16_at(x, 64);
  for (int j = 0; j < 64; j += 32)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) {
        const std::int8_t q = static_cast<std::int8_t>((byte_at(x, j + m) >> (l * 2)) & 3);
        *y++ = static_cast<float>(q - 1) * d;
      }
}

// block_mxfp4: e (e8m0), qs[16] (e2m1 codes).
void block_mxfp4(const std::byte* x, float* y) {
  const float d = e8m0_half(byte_at(x, 0));
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(kMxfp4[byte_at(x, 1 + j) & 0x0F]) * d;
    y[j + 16] = static_cast<float>(kMxfp4[byte_at(x, 1 + j) >> 4]) * d;
  }
}

// block_q1_0: d (fp16), qs[16]: bit j (LSB first) of the 128 selects +d (1) or -d (0).
// From dequantize_row_q1_0 in ggml/src/ggml-quants.c of ggml-org/llama.cpp (read at commit
// 01243c587feceaa5d6a6c2305535ef2f549c48b8; QK1_0 = 128). gguf-py has no Q1_0: the unit test's
// reference is written from that function (tools/fixtures/make_gguf_dequant_fixtures.py).
void block_q1_0(const std::byte* x, float* y) {
  const float d = fp16_at(x, 0);
  const float neg_d = -d;
  for (int j = 0; j < 128; ++j) {
    const u8 bit = (byte_at(x, 2 + j / 8) >> (j % 8)) & 1;
    y[j] = bit ? d : neg_d;
  }
}

using BlockFn = void (*)(const std::byte*, float*);

BlockFn block_decoder(std::uint32_t type) {
  switch (type) {
    case kQ4_0: return block_q4_0;
    case kQ4_1: return block_q4_1;
    case kQ5_0: return block_q5_0;
    case kQ5_1: return block_q5_1;
    case kQ8_0: return block_q8_0;
    case kQ2_K: return block_q2_k;
    case kQ3_K: return block_q3_k;
    case kQ4_K: return block_q4_k;
    case kQ5_K: return block_q5_k;
    case kQ6_K: return block_q6_k;
    case kIQ4_NL: return block_iq4_nl;
    case kIQ4_XS: return block_iq4_xs;
    case kTQ1_0: return block_tq1_0;
    case kTQ2_0: return block_tq2_0;
    case kMXFP4: return block_mxfp4;
    case kQ1_0: return block_q1_0;
    default: return nullptr;
  }
}

std::string type_label(std::uint32_t type) {
  const GgmlTypeTraits* traits = ggml_type_traits(type);
  return traits ? fmt::format("{} (ggml type {})", traits->name, type) : fmt::format("ggml type {}", type);
}

}  // namespace

bool gguf_type_dequantizable(std::uint32_t type) {
  return type == kF32 || type == kF16 || type == kBF16 || type == kGgmlTypeI2S || block_decoder(type) != nullptr;
}

// bitnet.cpp's I2_S: dequantize_row_i2_s of its llama.cpp fork (Eddie-Wang1120/llama.cpp,
// ggml/src/ggml-quants.c; the layout quantize_i2_s writes in microsoft/BitNet src/ggml-bitnet-mad.cpp
// with QK_I2_S 128): in each block of 128 values, byte gp (0..31) holds the 2-bit codes of values gp,
// 32 + gp, 64 + gp and 96 + gp in its bits 7-6, 5-4, 3-2 and 1-0; code 0, 1, 2, 3 is -1, 0, +1, 0,
// and a value is i2_scale * that, one float32 product.
void dequantize_i2s_row(const std::byte* codes, std::size_t n_elements, float scale, float* out) {
  static constexpr float kMap2bit[4] = {-1.0f, 0.0f, 1.0f, 0.0f};
  for (std::size_t done = 0; done < n_elements; done += 128) {
    const std::byte* x = codes + done / 4;
    const std::size_t in_block = std::min<std::size_t>(128, n_elements - done);
    for (std::size_t gp = 0; gp < 32; ++gp) {
      const u8 b = byte_at(x, gp);
      for (std::size_t k = 0; k < 4; ++k)
        if (k * 32 + gp < in_block) out[done + k * 32 + gp] = scale * kMap2bit[(b >> (6 - 2 * k)) & 3];
    }
  }
}

void require_gguf_dequantizable(std::uint32_t type, const std::string& file, const std::string& tensor) {
  if (!gguf_type_dequantizable(type))
    throw InputError(file, tensor,
                     fmt::format("type {} is not supported (decoded: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                                 "Q2_K to Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4, Q1_0, bitnet.cpp's I2_S)",
                                 type_label(type)));
}

void dequantize_gguf_row(std::uint32_t type, const std::byte* blocks, std::size_t n_elements, float* out,
                         const std::string& file, const std::string& tensor) {
  require_gguf_dequantizable(type, file, tensor);
  switch (type) {
    case kF32: std::memcpy(out, blocks, n_elements * 4); return;
    case kF16:
      for (std::size_t i = 0; i < n_elements; ++i) out[i] = f16_to_float(u16_at(blocks, 2 * i));
      return;
    case kBF16:
      for (std::size_t i = 0; i < n_elements; ++i) out[i] = bf16_to_float(u16_at(blocks, 2 * i));
      return;
    case kGgmlTypeI2S:
      throw InternalError(fmt::format("'{}': an I2_S row needs its tensor's scale (dequantize_i2s_row)", tensor));
    default: break;
  }
  const GgmlTypeTraits* traits = ggml_type_traits(type);
  if (!traits) throw InternalError(fmt::format("no block size for {}", type_label(type)));
  if (n_elements % traits->block_size != 0)
    throw InputError(file, tensor,
                     fmt::format("{} elements are not whole blocks of {} ({} elements a block)", n_elements,
                                 type_label(type), traits->block_size));
  const BlockFn decode = block_decoder(type);
  const std::size_t n_blocks = n_elements / traits->block_size;
  for (std::size_t b = 0; b < n_blocks; ++b) decode(blocks + b * traits->type_size, out + b * traits->block_size);
}

}  // namespace vindex
