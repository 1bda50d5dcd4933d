// Result encoding between ranks: a round trip keeps every value; malformed buffers are refused.
#include <cmath>

#include "catch_compat.hpp"
#include "vindex/errors.hpp"
#include "vindex/results.hpp"

using namespace vindex;

namespace {

MatrixResult sample(int layer, int expert) {
  MatrixResult r;
  r.key = {layer, expert < 0 ? MatrixRole::dense : MatrixRole::routed, Projection::down, expert};
  r.rows = 7168;
  r.cols = 3;
  r.gram_bits = expert % 2 ? FloatBits::fp64 : FloatBits::fp32;
  r.eigen_bits = expert % 3 ? FloatBits::fp64 : FloatBits::fp32;
  r.singular_values = {3.0f, 2.0f, 0.5f};
  r.stats.var_at_k = {0.5, 1.0};
  r.stats.top_sv = 3.0;
  r.stats.sv_ratio = NAN;
  r.stats.frobenius_norm = 3.7;
  r.stats.stable_rank = 1.5;
  r.stats.effective_rank = 2.25;
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
    REQUIRE(out[i].gram_bits == in[i].gram_bits);
    REQUIRE(out[i].eigen_bits == in[i].eigen_bits);
    REQUIRE(out[i].singular_values == in[i].singular_values);
    REQUIRE(out[i].stats.var_at_k == in[i].stats.var_at_k);
    REQUIRE(std::isnan(out[i].stats.sv_ratio));
    REQUIRE(out[i].stats.effective_rank == in[i].stats.effective_rank);
  }
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
