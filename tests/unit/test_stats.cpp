// Per-matrix statistics and quantiles against numpy float64 (tests/fixtures/reference).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/numerics/stats.hpp"

using namespace vindex;

TEST_CASE("matrix statistics match numpy on reference spectra", "[stats]") {
  const auto cases = vindex_test::read_json(vindex_test::fixture("reference/stats_cases.json"))["cases"];
  REQUIRE(cases.size() >= 8);
  for (const auto& c : cases) {
    INFO("case " << c["name"].get<std::string>());
    const auto s = c["singular_values"].get<std::vector<double>>();
    std::vector<double> eig;
    for (double x : s) eig.push_back(x * x);
    const double fro_sq = std::accumulate(eig.begin(), eig.end(), 0.0);
    std::vector<int> ks;
    for (const auto& kv : c["var_at_k"]) ks.push_back(kv[0].get<int>());
    const MatrixStats stats = compute_matrix_stats(eig, fro_sq, ks);
    for (std::size_t i = 0; i < ks.size(); ++i) REQUIRE_THAT(stats.var_at_k[i], WithinAbs(c["var_at_k"][i][1].get<double>(), 1e-14));
    if (c["sv_ratio"].is_null()) {
      REQUIRE(std::isnan(stats.sv_ratio));
    } else {
      REQUIRE_THAT(stats.sv_ratio, WithinRel(c["sv_ratio"].get<double>(), 1e-14));
    }
    REQUIRE_THAT(stats.frobenius_norm, WithinRel(c["frobenius_norm"].get<double>(), 1e-14));
    REQUIRE_THAT(stats.stable_rank, WithinRel(c["stable_rank"].get<double>(), 1e-13));
    REQUIRE_THAT(stats.effective_rank, WithinRel(c["effective_rank"].get<double>(), 1e-12));
    REQUIRE_THAT(stats.top_sv, WithinRel(s[0], 1e-15));
  }
}

TEST_CASE("var@k uses the exact Frobenius norm as its denominator", "[stats]") {
  // Eigenvalues that do not add up to the norm (as rounding leaves them) must not shift var@k.
  const std::vector<double> eig{4.0, 1.0, 0.0};
  const std::vector<int> ks{1, 3};
  const MatrixStats s = compute_matrix_stats(eig, 10.0, ks);
  REQUIRE(s.var_at_k[0] == 0.4);
  REQUIRE(s.var_at_k[1] == 1.0);  // k >= n: all of the spectrum, exactly
  REQUIRE(std::isnan(compute_matrix_stats(std::vector<double>{0.0, 0.0}, 0.0, ks).var_at_k[0]));
}

TEST_CASE("quantiles and summaries match numpy's linear interpolation", "[stats]") {
  const auto cases = vindex_test::read_json(vindex_test::fixture("reference/quantile_cases.json"))["cases"];
  REQUIRE(cases.size() >= 8);
  for (const auto& c : cases) {
    std::vector<double> values = c["values"].get<std::vector<double>>();
    INFO("n = " << values.size());
    const Summary s = summarize(values);
    REQUIRE_THAT(s.median, WithinAbs(c["median"].get<double>(), 1e-15));
    REQUIRE(s.min == c["min"].get<double>());
    REQUIRE(s.max == c["max"].get<double>());
    REQUIRE_THAT(s.mean, WithinAbs(c["mean"].get<double>(), 1e-15));
    std::sort(values.begin(), values.end());
    for (const auto& qv : c["quantiles"])
      REQUIRE_THAT(quantile_sorted(values, qv[0].get<double>()), WithinAbs(qv[1].get<double>(), 1e-15));
    for (const auto& qv : c["quantiles"]) {
      if (qv[0].get<double>() == 0.25) REQUIRE_THAT(s.q25, WithinAbs(qv[1].get<double>(), 1e-15));
      if (qv[0].get<double>() == 0.75) REQUIRE_THAT(s.q75, WithinAbs(qv[1].get<double>(), 1e-15));
    }
  }
}

TEST_CASE("summaries skip undefined values", "[stats]") {
  const std::vector<double> v{NAN, 3.0, 1.0, NAN, 2.0};
  const Summary s = summarize(v);
  REQUIRE(s.median == 2.0);
  REQUIRE(s.min == 1.0);
  REQUIRE(std::isnan(summarize(std::vector<double>{NAN}).median));
}
