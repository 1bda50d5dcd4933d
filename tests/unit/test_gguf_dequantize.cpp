// GGUF block dequantization against gguf-py's gguf.quants.dequantize (llama.cpp's own Python
// package), bit for bit: random raw blocks of every decoded type, with edge scales (zero,
// subnormal, largest, negative, Inf, NaN) and blocks quantized by gguf-py, and gguf-py's float32
// values for them (tests/fixtures/gguf/dequant, tools/fixtures/make_gguf_dequant_fixtures.py).
// Q1_0, which gguf-py lacks, is checked against a reference written in that script from ggml's
// dequantize_row_q1_0, and bitnet.cpp's I2_S (tensors of 512 values, each with its scale after the
// codes) against one written there from its dequantize_row_i2_s. Unsupported types are an
// InputError naming the tensor and the type.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"
#include "vindex/model/gguf_dequantize.hpp"

using namespace vindex;
using vindex_test::contains;

namespace {

std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// I2_S.bin: tensors of this many values, each its codes then its 32-byte trailer (the scale first).
constexpr std::size_t kI2sFixtureTensor = 512;

struct Fixture {
  std::uint32_t type = 0;
  std::uint32_t n = 0;
  std::vector<std::byte> blocks;
  std::vector<float> expected;
};

Fixture load_fixture(const std::string& file) {
  const std::vector<std::byte> bytes = read_bytes(vindex_test::fixture("gguf/dequant/" + file));
  REQUIRE(bytes.size() >= 8);
  Fixture f;
  std::memcpy(&f.type, bytes.data(), 4);
  std::memcpy(&f.n, bytes.data() + 4, 4);
  const GgmlTypeTraits* traits = ggml_type_traits(f.type);
  REQUIRE(traits != nullptr);
  REQUIRE(f.n % traits->block_size == 0);
  std::size_t block_bytes = std::size_t{f.n} / traits->block_size * traits->type_size;
  if (f.type == kGgmlTypeI2S) block_bytes += std::size_t{f.n} / kI2sFixtureTensor * kI2sTrailerBytes;
  REQUIRE(bytes.size() == 8 + block_bytes + 4 * std::size_t{f.n});
  f.blocks.assign(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(block_bytes));
  f.expected.resize(f.n);
  std::memcpy(f.expected.data(), bytes.data() + 8 + block_bytes, 4 * std::size_t{f.n});
  return f;
}

void decode_fixture(const Fixture& f, float* out) {
  if (f.type != kGgmlTypeI2S) {
    dequantize_gguf_row(f.type, f.blocks.data(), f.n, out);
    return;
  }
  const std::size_t tensor_bytes = kI2sFixtureTensor / 4 + kI2sTrailerBytes;
  for (std::size_t t = 0; t < f.n / kI2sFixtureTensor; ++t) {
    const std::byte* codes = f.blocks.data() + t * tensor_bytes;
    float scale = 0;
    std::memcpy(&scale, codes + kI2sFixtureTensor / 4, 4);
    dequantize_i2s_row(codes, kI2sFixtureTensor, scale, out + t * kI2sFixtureTensor);
  }
}

}  // namespace

TEST_CASE("GGUF types decode bit for bit as gguf-py's dequantize (Q1_0, I2_S: their C code's layout)", "[gguf][dequantize]") {
  const nlohmann::json index = vindex_test::read_json(vindex_test::fixture("gguf/dequant/index.json"));
  const std::vector<std::string> expected_types{"F32",  "F16",  "BF16", "Q4_0",   "Q4_1",   "Q5_0",  "Q5_1",
                                                "Q8_0", "Q2_K", "Q3_K", "Q4_K",   "Q5_K",   "Q6_K",  "IQ4_NL",
                                                "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4", "Q1_0", "I2_S"};
  std::vector<std::string> seen;
  for (const auto& entry : index.at("files")) {
    const std::string name = entry.at("type").get<std::string>();
    seen.push_back(name);
    SECTION(name) {
      const Fixture f = load_fixture(entry.at("file").get<std::string>());
      CHECK(f.type == entry.at("id").get<std::uint32_t>());
      CHECK(ggml_type_traits(f.type)->name == name);
      CHECK(gguf_type_dequantizable(f.type));
      std::vector<float> out(f.n, 12345.0f);
      decode_fixture(f, out.data());
      std::size_t mismatches = 0, non_finite = 0;
      std::string first;
      for (std::size_t i = 0; i < f.n; ++i) {
        const float a = out[i], b = f.expected[i];
        if (!std::isfinite(b)) ++non_finite;
        const bool same = (std::isnan(a) && std::isnan(b)) ||
                          std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
        if (!same && mismatches++ == 0)
          first = fmt::format("element {}: {} ({:#010x}), reference {} ({:#010x})", i, a,
                              std::bit_cast<std::uint32_t>(a), b, std::bit_cast<std::uint32_t>(b));
      }
      INFO(name << ": " << mismatches << " of " << f.n << " differ; first " << first);
      CHECK(mismatches == 0);
      // The edge scales were there: NaN and Inf scales give NaN and Inf values (MXFP4's e8m0 has
      // no NaN in ggml, but 2^127 times 12 overflows to Inf).
      CHECK(non_finite > 0);
    }
  }
  CHECK(seen == expected_types);
}

TEST_CASE("a GGUF type not decoded is an InputError naming the tensor and the type", "[gguf][dequantize]") {
  // IQ2_XXS (16), IQ3_S (21), IQ1_M (29), NVFP4 (40), I8 (24), unknown (99).
  for (const std::uint32_t type : {16u, 21u, 29u, 40u, 24u, 99u}) {
    CHECK_FALSE(gguf_type_dequantizable(type));
    std::vector<std::byte> blocks(1024);
    std::vector<float> out(256);
    try {
      dequantize_gguf_row(type, blocks.data(), 256, out.data(), "model.gguf", "blk.3.ffn_down.weight");
      FAIL("no error for type " << type);
    } catch (const InputError& e) {
      CHECK(e.code() == ExitCode::bad_input);
      CHECK(e.tensor() == "blk.3.ffn_down.weight");
      CHECK_THAT(std::string(e.what()), contains("blk.3.ffn_down.weight"));
      CHECK_THAT(std::string(e.what()), contains(fmt::format("ggml type {}", type)));
      if (const GgmlTypeTraits* traits = ggml_type_traits(type))
        CHECK_THAT(std::string(e.what()), contains(std::string(traits->name)));
    }
    CHECK_THROWS_AS(require_gguf_dequantizable(type, "model.gguf", "t"), InputError);
  }
  CHECK_NOTHROW(require_gguf_dequantizable(12, "model.gguf", "t"));
}

TEST_CASE("a GGUF row that is not whole blocks is an InputError", "[gguf][dequantize]") {
  std::vector<std::byte> blocks(144 * 2);
  std::vector<float> out(512);
  CHECK_THROWS_AS(dequantize_gguf_row(12, blocks.data(), 300, out.data(), "m.gguf", "t"), InputError);
  CHECK_NOTHROW(dequantize_gguf_row(12, blocks.data(), 512, out.data(), "m.gguf", "t"));
}
