// The Marchenko-Pastur random floor of var@k against numpy's float64 SVDs of seeded Gaussian
// matrices (tests/fixtures/reference/random_floor.json, tools/fixtures/make_random_floor_reference.py).
#include <cmath>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/numerics/random_floor.hpp"

using namespace vindex;

TEST_CASE("the random floor of var@k is what numpy's SVDs of Gaussian matrices give", "[random_floor]") {
  const auto doc = vindex_test::read_json(vindex_test::fixture("reference/random_floor.json"));
  REQUIRE(doc.at("cases").size() >= 10);
  for (const auto& c : doc.at("cases")) {
    const auto rows = c.at("rows").get<std::uint64_t>(), cols = c.at("cols").get<std::uint64_t>();
    const int k = c.at("k").get<int>();
    const double mean = c.at("mean").get<double>();
    const double floor = random_floor_var_at_k(rows, cols, k);
    INFO(rows << " x " << cols << ", k " << k << ": numpy " << mean << ", Marchenko-Pastur " << floor);
    // The law is the large-matrix limit: finite matrices differ from it by a fraction of a percent
    // (measured 0.02-0.4%, mostly above it: their largest eigenvalues fluctuate upward).
    const double se = c.at("standard_error").get<double>();
    REQUIRE(std::abs(floor - mean) <= 0.004 * mean + 3 * se);
    // The shape alone decides it, not the orientation.
    REQUIRE(random_floor_var_at_k(cols, rows, k) == floor);
  }
}

TEST_CASE("the random floor's limits: all of the spectrum, square matrices, more k, longer matrices", "[random_floor]") {
  REQUIRE(random_floor_var_at_k(100, 50, 50) == 1.0);
  REQUIRE(random_floor_var_at_k(100, 50, 80) == 1.0);
  // A square matrix (c = 1, a = 0) is finite and between k/n and 1.
  const double square = random_floor_var_at_k(512, 512, 64);
  REQUIRE(square > 64.0 / 512);
  REQUIRE(square < 1.0);
  // More k, more of the spectrum; a longer matrix (c -> 0) flattens towards k / min.
  REQUIRE(random_floor_var_at_k(1536, 576, 128) > random_floor_var_at_k(1536, 576, 64));
  const double tall = random_floor_var_at_k(1'000'000, 100, 10);
  REQUIRE(tall > 0.1);
  REQUIRE(tall < 0.1 * 1.1);
}
