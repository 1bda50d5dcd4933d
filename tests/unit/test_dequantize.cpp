// Dequantization against torch: all 256 e4m3fn codes, whole fp8 block-scaled matrices of the demo
// checkpoint (bit for bit), F16 exhaustively against the compiler's _Float16, edges and errors.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/dequantize.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/base/checksum.hpp"
#include "vindex/run/rank_computation.hpp"

using namespace vindex;
using vindex_test::contains;

namespace {

EncodedMatrix encoded(const Checkpoint& ckpt, const std::string& name) {
  const TensorRecord* w = ckpt.find(name);
  REQUIRE(w != nullptr);
  EncodedMatrix m;
  m.weight = ckpt.view(*w);
  if (const TensorRecord* s = ckpt.find(name + "_scale_inv")) m.scale = ckpt.view(*s);
  m.rows = w->info->shape[0];
  m.cols = w->info->shape[1];
  return m;
}

}  // namespace

TEST_CASE("all 256 fp8 e4m3fn codes decode as torch decodes them", "[dequantize]") {
  std::ifstream in(vindex_test::fixture("reference/fp8_e4m3fn.txt"));
  int count = 0;
  int code = 0;
  std::string hex;
  while (in >> code >> hex) {
    const float expected = std::bit_cast<float>(static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16)));
    const float got = fp8_e4m3_to_float(static_cast<std::uint8_t>(code));
    INFO("code " << code);
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(got));
      REQUIRE((code & 0x7F) == 0x7F);
    } else {
      REQUIRE(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(expected));  // also the sign of zero
    }
    ++count;
  }
  REQUIRE(count == 256);
  REQUIRE(fp8_e4m3_to_float(0x7E) == 448.0f);
  REQUIRE(fp8_e4m3_to_float(0x01) == 0x1p-9f);
}

TEST_CASE("every F16 code decodes as the compiler's _Float16 does", "[dequantize]") {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto h = std::bit_cast<_Float16>(static_cast<std::uint16_t>(bits));
    const float expected = static_cast<float>(h);
    const float got = f16_to_float(static_cast<std::uint16_t>(bits));
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(expected));
    }
  }
}

TEST_CASE("BF16 is the upper half of a float32", "[dequantize]") {
  for (float x : {1.0f, -2.5f, 0x1p-130f, 3.0e38f}) {
    const auto bits = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(x) >> 16);
    REQUIRE(std::bit_cast<std::uint32_t>(bf16_to_float(bits)) == (std::bit_cast<std::uint32_t>(x) & 0xFFFF0000u));
  }
}

TEST_CASE("fp8 block-scaled matrices dequantize bit for bit as torch does", "[dequantize]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const auto [tensor, reference] = GENERATE(
      std::make_pair(std::string("model.layers.2.mlp.experts.5.down_proj.weight"), std::string("dequant_L2_E5_down_proj.f32")),
      std::make_pair(std::string("model.layers.0.mlp.down_proj.weight"), std::string("dequant_L0_down_proj.f32")));
  const EncodedMatrix m = encoded(ckpt, tensor);
  const std::vector<float> expected = vindex_test::read_f32(vindex_test::fixture("reference/" + reference));
  REQUIRE(expected.size() == m.rows * m.cols);
  const MatrixDecoder decoder(m);

  std::vector<float> full(m.rows * m.cols);
  const double sum_sq = decoder.decode(0, m.rows, 0, m.cols, full.data(), m.cols);
  REQUIRE(std::memcmp(full.data(), expected.data(), full.size() * sizeof(float)) == 0);
  double expected_sq = 0;
  for (float v : expected) expected_sq += static_cast<double>(v) * v;
  REQUIRE_THAT(sum_sq, WithinRel(expected_sq, 1e-12));

  // Sub-rectangles straddling the 128-wide block edges decode to the same values, in float64 too.
  for (const auto& [r0, r1, c0, c1] : {std::array<std::uint64_t, 4>{127, 129, 0, m.cols},
                                      std::array<std::uint64_t, 4>{0, m.rows, 120, 136},
                                      std::array<std::uint64_t, 4>{128, m.rows, 128, 136}}) {
    const std::uint64_t ld = c1 - c0 + 3;  // a leading dimension larger than the width
    std::vector<double> part((r1 - r0) * ld, -1.0);
    decoder.decode(r0, r1, c0, c1, part.data(), ld);
    for (std::uint64_t r = r0; r < r1; ++r)
      for (std::uint64_t c = c0; c < c1; ++c)
        REQUIRE(part[(r - r0) * ld + (c - c0)] == static_cast<double>(expected[r * m.cols + c]));
  }
}

TEST_CASE("NaN and Inf in weights or scales name the tensor and the position", "[dequantize][hostile]") {
  vindex_test::TempDir tmp;
  const auto path = tmp.path() / "m.safetensors";
  const auto open_matrix = [&](const vindex_test::SafetensorsBuilder& b, std::uint64_t rows, std::uint64_t cols) {
    b.write(path);
    auto header = std::make_shared<SafetensorsHeader>(read_safetensors_header(path, path.string()));
    auto mapping = std::make_shared<const ShardFile>(path);
    EncodedMatrix m;
    m.weight = TensorView(mapping, header->find("w"), header->data_offset() + header->find("w")->begin);
    if (const TensorInfo* s = header->find("w_scale_inv")) m.scale = TensorView(mapping, s, header->data_offset() + s->begin);
    m.rows = rows;
    m.cols = cols;
    return std::make_pair(m, header);
  };
  std::vector<float> out(130 * 3);

  SECTION("fp8 NaN code") {
    std::vector<std::byte> codes(130 * 3, std::byte{0x38});  // 1.0
    codes[129 * 3 + 2] = std::byte{0xFF};
    vindex_test::SafetensorsBuilder b;
    b.add("w", "F8_E4M3", {130, 3}, codes).add_f32("w_scale_inv", {2, 1}, {1.0f, 2.0f});
    const auto [m, keep] = open_matrix(b, 130, 3);
    const MatrixDecoder decoder(m);
    REQUIRE_THROWS_AS(decoder.decode(0, 130, 0, 3, out.data(), 3), InputError);
    REQUIRE_THROWS_WITH(decoder.decode(0, 130, 0, 3, out.data(), 3), contains("tensor 'w'") && contains("[129, 2] is NaN"));
    REQUIRE_NOTHROW(decoder.decode(0, 129, 0, 3, out.data(), 3));
  }
  SECTION("Inf block scale") {
    std::vector<std::byte> codes(130 * 3, std::byte{0x38});
    vindex_test::SafetensorsBuilder b;
    b.add("w", "F8_E4M3", {130, 3}, codes).add_f32("w_scale_inv", {2, 1}, {1.0f, INFINITY});
    REQUIRE_THROWS_WITH(MatrixDecoder(open_matrix(b, 130, 3).first), contains("tensor 'w_scale_inv'") && contains("[1, 0] is +Inf"));
  }
  SECTION("fp8 value times its scale overflowing float32") {
    std::vector<std::byte> codes(130 * 3, std::byte{0x7E});  // 448
    vindex_test::SafetensorsBuilder b;
    b.add("w", "F8_E4M3", {130, 3}, codes).add_f32("w_scale_inv", {2, 1}, {1.0f, 1e37f});
    const auto [m, keep] = open_matrix(b, 130, 3);
    REQUIRE_THROWS_WITH(MatrixDecoder(m).decode(0, 130, 0, 3, out.data(), 3), contains("[128, 0] is +Inf"));
  }
  SECTION("F32 NaN") {
    std::vector<float> values(4 * 3, 0.5f);
    values[7] = NAN;
    vindex_test::SafetensorsBuilder b;
    b.add_f32("w", {4, 3}, values);
    const auto [m, keep] = open_matrix(b, 4, 3);
    REQUIRE_THROWS_WITH(MatrixDecoder(m).decode(0, 4, 0, 3, out.data(), 3), contains("[2, 1] is NaN"));
  }
}

namespace {

// A tensor file of one MXFP4 expert: blocks [experts, rows, 1, 16] and scales [experts, rows, 1].
struct Mxfp4File {
  std::shared_ptr<SafetensorsHeader> header;
  std::shared_ptr<const ShardFile> mapping;
  EncodedMatrix matrix(std::uint64_t rows, std::uint64_t cols, StoredSlice slice = {}) const {
    EncodedMatrix m;
    m.weight = TensorView(mapping, header->find("blocks"), header->data_offset() + header->find("blocks")->begin);
    m.scale = TensorView(mapping, header->find("scales"), header->data_offset() + header->find("scales")->begin);
    m.encoding = WeightEncoding::mxfp4;
    m.rows = rows;
    m.cols = cols;
    m.slice = slice;
    return m;
  }
};

Mxfp4File write_mxfp4(const std::filesystem::path& path, std::vector<std::uint64_t> block_shape,
                      const std::vector<std::byte>& blocks, const std::vector<std::byte>& scales) {
  std::vector<std::uint64_t> scale_shape(block_shape.begin(), block_shape.end() - 1);
  vindex_test::SafetensorsBuilder b;
  b.add("blocks", "U8", block_shape, blocks).add("scales", "U8", scale_shape, scales);
  b.write(path);
  return {std::make_shared<SafetensorsHeader>(read_safetensors_header(path, path.string())),
          std::make_shared<const ShardFile>(path)};
}

}  // namespace

TEST_CASE("every MXFP4 byte under edge e8m0 scales decodes as transformers decodes it", "[dequantize][mxfp4]") {
  // Reference: transformers' convert_moe_packed_tensors (tools/make_reference_tables.py).
  const auto ref = vindex_test::read_json(vindex_test::fixture("reference/mxfp4_transformers.json"));
  const std::vector<int> scale_codes = ref["scales"].get<std::vector<int>>();
  REQUIRE(scale_codes.size() == 16);
  std::vector<std::byte> blocks(256), scales;
  for (int i = 0; i < 256; ++i) blocks[static_cast<std::size_t>(i)] = static_cast<std::byte>(i);
  for (int s : scale_codes) scales.push_back(static_cast<std::byte>(s));
  vindex_test::TempDir tmp;
  const Mxfp4File file = write_mxfp4(tmp.path() / "m.safetensors", {1, 16, 1, 16}, blocks, scales);
  const EncodedMatrix m = file.matrix(16, 32);
  const MatrixDecoder decoder(m);
  std::vector<float> out(16 * 32);
  const auto& bits = ref["float32_bits"];
  REQUIRE(bits.size() == out.size());
  int overflowing_rows = 0;
  for (std::uint64_t r = 0; r < 16; ++r) {
    INFO("row " << r << " (scale " << scale_codes[r] << ")");
    bool finite = true;
    for (std::uint64_t c = 0; c < 32; ++c)
      finite = finite && std::isfinite(std::bit_cast<float>(static_cast<std::uint32_t>(
                             std::stoul(bits[r * 32 + c].get<std::string>(), nullptr, 16))));
    if (!finite) {  // 6 x 2^126 and beyond overflow float32: an input error here, +-Inf in transformers
      REQUIRE_THROWS_WITH(decoder.decode(r, r + 1, 0, 32, out.data() + r * 32, 32),
                          contains("tensor 'blocks'") && contains("Inf after applying its scale"));
      ++overflowing_rows;
      continue;
    }
    decoder.decode(r, r + 1, 0, 32, out.data() + r * 32, 32);
    for (std::uint64_t c = 0; c < 32; ++c) {
      INFO("column " << c);
      REQUIRE(std::bit_cast<std::uint32_t>(out[r * 32 + c]) == std::stoul(bits[r * 32 + c].get<std::string>(), nullptr, 16));
    }
  }
  REQUIRE(overflowing_rows == 2);  // scales 253 and 254 (6 x 2^125, under scale 252, still fits)
  // The scalar decoders agree with the table, including the sign of zero and 2^-127.
  for (int code = 0; code < 16; ++code)
    REQUIRE(std::bit_cast<std::uint32_t>(fp4_e2m1_to_float(static_cast<std::uint8_t>(code))) ==
            std::bit_cast<std::uint32_t>(out[static_cast<std::size_t>(7 * 32 + 2 * code)]));  // row 7: scale 127 (x1)
  REQUIRE(e8m0_to_float(0) == 0x1p-127f);
  REQUIRE(e8m0_to_float(254) == 0x1p127f);
  REQUIRE(std::isnan(e8m0_to_float(255)));
}

TEST_CASE("MXFP4 slices of a fused tensor read their own rows and scales; scale 255 is refused", "[dequantize][mxfp4][hostile]") {
  // Two experts of 4 rows x 32 columns; expert e's row r is all code (e * 4 + r) % 8 with scale 127 + r.
  std::vector<std::byte> blocks, scales;
  for (int e = 0; e < 2; ++e)
    for (int r = 0; r < 4; ++r) {
      const int code = (e * 4 + r) % 8;
      blocks.insert(blocks.end(), 16, static_cast<std::byte>(code | (code << 4)));
      scales.push_back(static_cast<std::byte>(127 + r));
    }
  vindex_test::TempDir tmp;
  const Mxfp4File file = write_mxfp4(tmp.path() / "m.safetensors", {2, 4, 1, 16}, blocks, scales);
  // Expert 1's odd rows (the "up" half of an interleaved gate_up): offset 4*32 + 32, row stride 64.
  const EncodedMatrix up = file.matrix(2, 32, {4 * 32 + 32, 64, 1, false});
  std::vector<float> out(2 * 32);
  const double sum_sq = MatrixDecoder(up).decode(0, 2, 0, 32, out.data(), 32);
  double expected_sq = 0;
  for (int i = 0; i < 2; ++i) {
    const int r = 1 + 2 * i;
    const float want = fp4_e2m1_to_float(static_cast<std::uint8_t>((4 + r) % 8)) * e8m0_to_float(static_cast<std::uint8_t>(127 + r));
    for (int c = 0; c < 32; ++c) REQUIRE(out[static_cast<std::size_t>(i * 32 + c)] == want);
    expected_sq += 32.0 * want * want;
  }
  REQUIRE(sum_sq == expected_sq);
  // A slice reaching past the tensor is an internal error, not a read out of bounds.
  REQUIRE_THROWS_AS(MatrixDecoder(file.matrix(2, 32, {4 * 32 + 64, 64, 1, false})), InternalError);

  scales[6] = std::byte{0xFF};  // expert 1, row 2
  const Mxfp4File bad = write_mxfp4(tmp.path() / "bad.safetensors", {2, 4, 1, 16}, blocks, scales);
  REQUIRE_NOTHROW(MatrixDecoder(bad.matrix(4, 32)));  // expert 0 does not read that scale
  REQUIRE_NOTHROW(MatrixDecoder(bad.matrix(2, 32, {4 * 32 + 32, 64, 1, false})));  // nor expert 1's odd rows
  REQUIRE_THROWS_WITH(MatrixDecoder(bad.matrix(2, 32, {4 * 32, 64, 1, false})),    // its even rows do
                      contains("scale [1, 2, 0] is 255 (NaN)"));
  REQUIRE_THROWS_WITH(MatrixDecoder(bad.matrix(4, 32, {4 * 32, 32, 1, false})),
                      contains("tensor 'scales'") && contains("is 255 (NaN)"));
}

TEST_CASE("post-quantized fp8, GPTQ and AWQ weights decode bit for bit as their libraries dequantize them", "[dequantize][quantization]") {
  // tests/fixtures/postquant: compressed-tensors' decompress (the product in the scale's dtype:
  // bf16, fp16), and AutoFP8's and FBGEMM's float32 products; reference.json holds the SHA-256 of
  // each library's values as float32 (tools/fixtures/make_postquant_fixtures.py).
  // GPTQ and AWQ: GPTQModel's dequantization of the modules transformers loaded, in fp16
  // (tools/fixtures/make_gptq_awq_fixtures.py).
  for (const char* name : {"ct_fp8_tensor", "ct_fp8_channel", "ct_fp8_block", "fp8_static", "fbgemm_fp8",
                           "gptq_act_order", "gptq_asym", "gptq_v2", "awq_gemm"}) {
    const std::filesystem::path dir = vindex_test::fixture(std::string("postquant/") + name);
    const Checkpoint ckpt = Checkpoint::open(dir);
    const ModelLayout layout = detect_layout(ckpt);
    const nlohmann::json ref = vindex_test::read_json(dir / "reference.json");
    std::size_t checked = 0;
    for (const auto& m : ref.at("matrices")) {
      const std::string proj = m.at("projection").get<std::string>();
      const Projection p = proj == "gate_proj" ? Projection::gate : proj == "up_proj" ? Projection::up : Projection::down;
      const WeightRef& w = layout.layers.at(m.at("layer").get<std::size_t>()).dense[p];
      REQUIRE(w.weight->info->name == m.at("tensor").get<std::string>());
      const EncodedMatrix em = encode_weight(ckpt, w, layout.quantization);
      std::vector<float> values(em.rows * em.cols);
      MatrixDecoder(em).decode(0, em.rows, 0, em.cols, values.data(), em.cols);
      const std::string digest =
          sha256_hex(std::span<const std::byte>(reinterpret_cast<const std::byte*>(values.data()), values.size() * 4));
      INFO(name << " " << m.at("tensor").get<std::string>());
      CHECK(digest == m.at("float32_sha256").get<std::string>());
      ++checked;
    }
    CHECK(checked == 6);
  }
}
