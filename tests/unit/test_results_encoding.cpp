// Result encoding between ranks: a round trip keeps every value; malformed buffers are refused.
#include <bit>
#include <cmath>
#include <cstdint>

#include "catch_compat.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/run/results.hpp"

using namespace vindex;

namespace {

MatrixResult sample(int layer, int expert) {
  MatrixResult r;
  r.key = {layer, expert < 0 ? MatrixRole::dense : MatrixRole::routed, Projection::down, expert};
  r.rows = 7168;
  r.cols = 3 + static_cast<std::uint64_t>(layer);
  r.weight_digest = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(layer + 2) ^ static_cast<std::uint64_t>(expert);
  r.gram_bits = expert % 2 ? FloatBits::fp64 : FloatBits::fp32;
  r.eigen_bits = expert % 3 ? FloatBits::fp64 : FloatBits::fp32;
  r.singular_values = {3.0f, 2.0f, 0.5f};
  r.stats.var_at_k = {0.5, 1.0};
  // Every scalar distinct, per sample and per field, so that a field dropped, swapped or shifted by
  // the encoding cannot compare equal; sv_ratio NaN in one sample (undefined ratios travel as NaN).
  const double base = 1.0 + layer * 0.001 + expert * 1e-6;
  double value = base;
  for (const ScalarStat& s : kScalarStats) r.stats.*s.member = (value += 0.125);
  if (layer == 3) r.stats.sv_ratio = NAN;
  return r;
}

}  // namespace

TEST_CASE("results survive encoding and decoding", "[results]") {
  const std::vector<MatrixResult> in{sample(0, -1), sample(3, 7), sample(60, 383)};
  std::vector<std::byte> bytes;
  encode_results(in, bytes);
  const std::vector<MatrixResult> out = decode_results(bytes);
  REQUIRE(out.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    REQUIRE(out[i].key == in[i].key);
    REQUIRE(out[i].rows == in[i].rows);
    REQUIRE(out[i].cols == in[i].cols);
    REQUIRE(out[i].gram_bits == in[i].gram_bits);
    REQUIRE(out[i].eigen_bits == in[i].eigen_bits);
    REQUIRE(out[i].weight_digest == in[i].weight_digest);
    REQUIRE(out[i].singular_values == in[i].singular_values);
    REQUIRE(out[i].stats.var_at_k == in[i].stats.var_at_k);
    for (const ScalarStat& s : kScalarStats) {  // bit for bit, NaN included
      INFO(s.name);
      REQUIRE(std::bit_cast<std::uint64_t>(out[i].stats.*s.member) == std::bit_cast<std::uint64_t>(in[i].stats.*s.member));
    }
  }
  REQUIRE(std::isnan(out[1].stats.sv_ratio));
  std::vector<std::byte> empty;
  encode_results({}, empty);
  REQUIRE(decode_results(empty).empty());
}

TEST_CASE("truncated or padded result buffers are refused", "[results]") {
  std::vector<std::byte> bytes;
  encode_results(std::vector<MatrixResult>{sample(1, 2)}, bytes);
  std::vector<std::byte> truncated(bytes.begin(), bytes.end() - 5);
  REQUIRE_THROWS_AS(decode_results(truncated), InternalError);
  bytes.push_back(std::byte{0});
  REQUIRE_THROWS_AS(decode_results(bytes), InternalError);
}
