// WeightWatcher's metrics (vindex/numerics/ww_metrics.hpp) against WeightWatcher 0.7.7 itself
// (tests/fixtures/weightwatcher/ww_reference.json, made by tools/weightwatcher/make_ww_reference.py
// from synthetic and real trained matrices), the pruned KS search against a direct transcription of
// WeightWatcher's loop, and the behaviour on samples without a power law.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <utility>
#include <random>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/numerics/ww_metrics.hpp"

using namespace vindex;

namespace {

// WW_powerlaw.WWFit.fit_power_law_standard and its argmin, line by line (n >= 20 fitted values):
// every tail sum recomputed, the CDF through pow, every distance in full.
PowerLawFit direct_fit(const std::vector<double>& desc) {
  std::vector<double> x;
  for (double v : desc)
    if (v > kWeightWatcherEvalsThreshold) x.push_back(v);
  std::sort(x.begin(), x.end());
  const std::size_t n_all = x.size();
  std::vector<double> log_x(n_all);
  for (std::size_t i = 0; i < n_all; ++i) log_x[i] = std::log(x[i]);
  PowerLawFit best{0, 0, 2.0, 0};
  for (std::size_t i = 0; i + 1 < n_all; ++i) {
    const double n = static_cast<double>(n_all - i);
    double sum = 0;
    for (std::size_t j = i; j < n_all; ++j) sum += log_x[j];
    const double alpha = 1 + n / (sum - n * log_x[i]);
    double d = 1;
    if (alpha > 1) {
      d = 0;
      for (std::size_t k = 0; i + k < n_all; ++k)
        d = std::max(d, std::abs(1 - std::pow(x[i + k] / x[i], 1 - alpha) - static_cast<double>(k) / n));
    }
    if (d < best.ks_distance) best = {alpha, x[i], d, 0};
  }
  best.n_tail = static_cast<std::size_t>(x.end() - std::lower_bound(x.begin(), x.end(), best.xmin));
  return best;
}

std::vector<double> descending(std::vector<double> v) {
  std::sort(v.begin(), v.end(), [](double a, double b) { return a > b; });
  return v;
}

}  // namespace

TEST_CASE("WeightWatcher metrics match WeightWatcher 0.7.7 on its reference matrices", "[ww_metrics]") {
  const auto doc = vindex_test::read_json(vindex_test::fixture("weightwatcher/ww_reference.json"));
  const auto& cases = doc["cases"];
  REQUIRE(cases.size() >= 15);
  int real = 0, small = 0, big = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    INFO("matrix " << name);
    const auto ev = c["eigenvalues"].get<std::vector<double>>();
    const auto rows = c["rows"].get<std::uint64_t>(), cols = c["cols"].get<std::uint64_t>();
    REQUIRE(ev.size() == std::min(rows, cols));
    REQUIRE(std::is_sorted(ev.rbegin(), ev.rend()));
    real += name.starts_with("minilm_") || name.starts_with("silero_");
    small += ev.size() < 20;
    big += ev.size() >= 2048;

    const auto& w = c["weightwatcher"];
    const WeightWatcherMetrics m = compute_ww_metrics(ev, rows, cols);
    // The same eigenvalues and WeightWatcher's algorithm: agreement to rounding, and exactly the
    // same xmin (one of the eigenvalues). The project's bars are 1e-2 (alpha) and 1e-3.
    CHECK(m.xmin == w["xmin"].get<double>());
    CHECK(m.n_tail == w["num_pl_spikes"].get<std::size_t>());
    CHECK_THAT(m.alpha, WithinRel(w["alpha"].get<double>(), 1e-9));
    CHECK_THAT(m.alpha_weighted, WithinRel(w["alpha_weighted"].get<double>(), 1e-9));
    CHECK_THAT(m.ks_distance, WithinRel(w["D"].get<double>(), 1e-9));
    CHECK_THAT(m.stable_rank, WithinRel(w["stable_rank"].get<double>(), 1e-9));
    CHECK_THAT(m.entropy, WithinRel(w["entropy"].get<double>(), 1e-9));
    CHECK_THAT(m.log_norm, WithinRel(w["log_norm"].get<double>(), 1e-9));
    CHECK_THAT(m.log_spectral_norm, WithinRel(w["log_spectral_norm"].get<double>(), 1e-9));

    const PowerLawFit fit = fit_power_law(ev);
    CHECK(fit.alpha == m.alpha);
    CHECK(fit.xmin == m.xmin);
  }
  CHECK(real >= 4);   // trained matrices from PyPI packages
  CHECK(small >= 2);  // WeightWatcher's small-sample rule
  CHECK(big >= 1);    // the largest size the tool meets
}

TEST_CASE("the pruned KS search finds WeightWatcher's argmin exactly", "[ww_metrics]") {
  std::mt19937_64 rng(20240607);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = trial < 55 ? 20 + rng() % 300 : 2048;
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double u = uniform(rng);
      switch (trial % 5) {
        case 0: v[i] = std::pow(1 - u, -1.0 / (0.5 + 2 * uniform(rng))); break;   // mixed power laws
        case 1: v[i] = std::exp(normal(rng)); break;                               // lognormal
        case 2: v[i] = std::round(std::exp(normal(rng)) * 4) / 4 + 0.25; break;    // many ties
        case 3: v[i] = i < n / 10 ? 5 * std::pow(1 - u, -0.5) : 0.2 + 4.8 * u; break;  // tail + bulk
        default: v[i] = std::pow(1 + 0.5 * normal(rng), 2); break;                 // bulk only
      }
    }
    v = descending(v);
    INFO("trial " << trial << ", n = " << n);
    const PowerLawFit ours = fit_power_law(v);
    const PowerLawFit direct = direct_fit(v);
    REQUIRE(ours.xmin == direct.xmin);
    REQUIRE(ours.n_tail == direct.n_tail);
    REQUIRE_THAT(ours.alpha, WithinRel(direct.alpha, 1e-12));
    REQUIRE_THAT(ours.ks_distance, WithinAbs(direct.ks_distance, 1e-13));
  }
}

TEST_CASE("an exact Pareto sample gives its exponent", "[ww_metrics]") {
  // Quantiles of p(x) ~ x^-2.5 for x >= 1: the whole sample is the tail, alpha close to 2.5.
  for (std::size_t n : {200, 2048}) {
    std::vector<double> v;
    for (std::size_t k = 0; k < n; ++k)
      v.push_back(std::pow(1.0 - (static_cast<double>(k) + 0.5) / static_cast<double>(n), -1.0 / 1.5));
    v = descending(v);
    const PowerLawFit fit = fit_power_law(v);
    INFO("n = " << n << ", xmin = " << fit.xmin << ", n_tail = " << fit.n_tail);
    CHECK_THAT(fit.alpha, WithinAbs(2.5, 0.05));
    CHECK(fit.ks_distance < 0.05);
    CHECK(fit.n_tail >= n / 4);
  }
}

TEST_CASE("samples without a power law give NaN, never garbage", "[ww_metrics]") {
  SECTION("all eigenvalues equal") {
    const std::vector<double> v(64, 2.0);
    const WeightWatcherMetrics m = compute_ww_metrics(v, 100, 64);
    CHECK(std::isnan(m.alpha));  // WeightWatcher: inf
    CHECK(std::isnan(m.alpha_weighted));
    CHECK(m.xmin == 2.0);
    CHECK(m.ks_distance == 0.5);  // the two-point tail: |1 - 1 - 1/2|
    CHECK(m.n_tail == 64);
    CHECK_THAT(m.stable_rank, WithinRel(64.0, 1e-15));
    CHECK_THAT(m.entropy, WithinRel(1.0, 1e-8));
    CHECK_THAT(m.log_norm, WithinRel(std::log10(128.0), 1e-15));
    CHECK_THAT(m.log_spectral_norm, WithinRel(std::log10(2.0), 1e-15));
    // Fewer than 20: the small-sample rule (WeightWatcher: alpha 0.0).
    const PowerLawFit small = fit_power_law(std::vector<double>(12, 3.0));
    CHECK(std::isnan(small.alpha));
    CHECK(small.xmin == 3.0);
    CHECK(small.n_tail == 12);
  }
  SECTION("nothing above WeightWatcher's threshold") {
    const WeightWatcherMetrics m = compute_ww_metrics(std::vector<double>(50, 1e-6), 50, 50);
    CHECK(std::isnan(m.alpha));
    CHECK(std::isnan(m.xmin));
    CHECK(std::isnan(m.ks_distance));
    CHECK(m.n_tail == 0);
    CHECK_THAT(m.log_norm, WithinRel(std::log10(5e-5), 1e-14));  // the norms stay defined
    CHECK_THAT(m.stable_rank, WithinRel(50.0, 1e-14));
    const PowerLawFit one = fit_power_law(std::vector<double>{4.0, 0.0, 0.0});  // WeightWatcher fails
    CHECK(std::isnan(one.alpha));
    CHECK(one.n_tail == 0);
  }
  SECTION("a zero matrix, no eigenvalues, invalid values") {
    for (const auto& v : {std::vector<double>(30, 0.0), std::vector<double>{}, std::vector<double>{3.0, NAN, 1.0},
                          std::vector<double>{3.0, -1.0}}) {
      const WeightWatcherMetrics m = compute_ww_metrics(v, 40, 30);
      CHECK(std::isnan(m.alpha));
      CHECK(std::isnan(m.stable_rank));
      CHECK(std::isnan(m.entropy));
      CHECK(std::isnan(m.log_norm));
      CHECK(std::isnan(m.log_spectral_norm));
      CHECK(m.n_tail == 0);
    }
  }
}

TEST_CASE("only the min(rows, cols) largest eigenvalues count, as in WeightWatcher", "[ww_metrics]") {
  std::vector<double> v;
  for (int k = 0; k < 100; ++k) v.push_back(std::pow(1.0 - (k + 0.5) / 100.0, -1.0 / 1.2));
  v = descending(v);
  const WeightWatcherMetrics exact = compute_ww_metrics(v, 300, 100);
  std::vector<double> padded = v;
  padded.insert(padded.end(), 50, 1e-3);  // a Gram matrix of the larger side: rounding noise
  const WeightWatcherMetrics m = compute_ww_metrics(padded, 100, 300);
  CHECK(m.alpha == exact.alpha);
  CHECK(m.entropy == exact.entropy);
  CHECK(m.stable_rank == exact.stable_rank);
  CHECK(m.n_tail == exact.n_tail);
  // The rank in the entropy: singular values above sigma_max * max(rows, cols) * eps, so ten at
  // 150 eps * sigma_max do not count for a 300 x 100 matrix (nor a 100 x 300 one: max, not min).
  std::vector<double> deficient = v;
  const double tiny = v[0] * (150 * DBL_EPSILON) * (150 * DBL_EPSILON);
  std::fill(deficient.end() - 10, deficient.end(), tiny);
  double sum = 0, plogp = 0;
  for (double x : deficient) sum += x;
  for (double x : deficient) plogp += (x / sum + 1e-10) * std::log(x / sum + 1e-10);
  for (const auto& [rows, cols] : {std::pair<std::uint64_t, std::uint64_t>{300, 100}, {100, 300}})
    CHECK_THAT(compute_ww_metrics(deficient, rows, cols).entropy, WithinRel(-plogp / std::log(90.0 + 1e-10), 1e-12));
  // A 40 x 40 matrix's tolerance is 40 eps * sigma_max: there they count.
  std::vector<double> forty(deficient.end() - 40, deficient.end());
  forty.front() = v[0];
  double sum40 = 0, plogp40 = 0;
  for (double x : forty) sum40 += x;
  for (double x : forty) plogp40 += (x / sum40 + 1e-10) * std::log(x / sum40 + 1e-10);
  CHECK_THAT(compute_ww_metrics(forty, 40, 40).entropy, WithinRel(-plogp40 / std::log(40.0 + 1e-10), 1e-12));
}
