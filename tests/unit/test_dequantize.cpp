// Dequantization against torch: all 256 e4m3fn codes, whole fp8 block-scaled matrices of the demo
// checkpoint (bit for bit), F16 exhaustively against the compiler's _Float16, edges and errors.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/checkpoint.hpp"
#include "vindex/dequantize.hpp"
#include "vindex/errors.hpp"
#include "vindex/layout.hpp"

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
    auto mapping = std::make_shared<const MappedFile>(path);
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
