// Per-matrix spectral statistics and per-layer order statistics.
#include "vindex/numerics/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "vindex/base/errors.hpp"
#include "vindex/numerics/ww_metrics.hpp"

namespace vindex {

MatrixStats compute_matrix_stats(std::span<const double> eig, double frobenius_sq, std::span<const int> ks) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  MatrixStats s;
  const std::size_t n = eig.size();
  s.frobenius_norm = std::sqrt(frobenius_sq);
  s.top_sv = n ? std::sqrt(eig[0]) : 0.0;
  s.sv_ratio = (n >= 2 && eig[1] > 0) ? std::sqrt(eig[0]) / std::sqrt(eig[1]) : nan;
  s.stable_rank = (n && eig[0] > 0) ? frobenius_sq / eig[0] : nan;

  // Prefix sums in float64, largest first.
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + eig[i];
  s.var_at_k.reserve(ks.size());
  for (int k : ks) {
    VINDEX_ASSERT(k > 0);
    if (frobenius_sq <= 0) {
      s.var_at_k.push_back(nan);
    } else if (static_cast<std::size_t>(k) >= n) {
      s.var_at_k.push_back(1.0);
    } else {
      s.var_at_k.push_back(prefix[static_cast<std::size_t>(k)] / frobenius_sq);
    }
  }

  const double total = prefix[n];
  if (total > 0) {
    double entropy = 0.0;
    for (double lambda : eig) {
      const double p = lambda / total;
      if (p > 0) entropy -= p * std::log(p);
    }
    s.effective_rank = std::exp(entropy);
  } else {
    s.effective_rank = nan;
  }
  return s;
}

void add_weightwatcher_metrics(std::span<const double> eigenvalues, std::uint64_t rows, std::uint64_t cols,
                               MatrixStats& stats) {
  const WeightWatcherMetrics ww = compute_ww_metrics(eigenvalues, rows, cols);
  stats.alpha = ww.alpha;
  stats.alpha_weighted = ww.alpha_weighted;
  stats.alpha_xmin = ww.xmin;
  stats.alpha_ks_distance = ww.ks_distance;
  stats.matrix_entropy = ww.entropy;
  stats.log_norm = ww.log_norm;
  stats.log_spectral_norm = ww.log_spectral_norm;
}

double quantile_sorted(std::span<const double> sorted, double q) {
  VINDEX_ASSERT(!sorted.empty() && q >= 0 && q <= 1);
  const double h = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = h - static_cast<double>(lo);
  // numpy's lerp: from the nearer neighbour, so that q = 1 gives exactly the maximum
  const double diff = sorted[hi] - sorted[lo];
  return frac >= 0.5 ? sorted[hi] - diff * (1.0 - frac) : sorted[lo] + diff * frac;
}

Summary summarize(std::span<const double> values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values)
    if (!std::isnan(x)) v.push_back(x);
  if (v.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan, nan, nan, nan, nan};
  }
  std::sort(v.begin(), v.end());
  Summary s;
  s.min = v.front();
  s.max = v.back();
  s.q25 = quantile_sorted(v, 0.25);
  s.median = quantile_sorted(v, 0.5);
  s.q75 = quantile_sorted(v, 0.75);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return s;
}

}  // namespace vindex
