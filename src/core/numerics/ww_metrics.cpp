// WeightWatcher's per-matrix metrics from a matrix's eigenvalues: the power-law fit of
// weightwatcher 0.7.7's own fitter (WW_powerlaw.WWFit) and the norm metrics of
// WeightWatcher.apply_norm_metrics / RMT_Util.matrix_entropy (docs/weightwatcher.md, "Definitions").
//
// The fit gives WeightWatcher's numbers without its O(n^2) cost: the log-likelihood sums of every
// candidate xmin come from one suffix recurrence, and each candidate's KS distance is cut short as
// soon as it can no longer beat the best one found so far (probing first where its neighbour's
// deviation was largest), after a coarse first pass over the candidates finds a good one. Only
// candidates that cannot win are cut short, and the winner's distance is computed over its whole
// tail, so the result is WeightWatcher's argmin (first of equal distances) exactly.
#include "vindex/numerics/ww_metrics.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace vindex {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// WW_powerlaw.py: SMALL_N_CUTOFF, and fit_powerlaw_smallN's k_min and degenerate-tail bound.
constexpr std::size_t kSmallSample = 20;
constexpr std::size_t kSmallMinTail = 8;
constexpr double kSmallDegenerateSpread = 1e-12;
// constants.py: EPSILON, added to each probability and to the rank in matrix_entropy.
constexpr double kEntropyEpsilon = 1e-10;

// Probe points per candidate before its full scan, and first-pass candidates.
constexpr std::size_t kProbes = 16;
constexpr std::size_t kFirstPassCandidates = 16;

// The fitted sample: x ascending (all above the threshold), their logs, and for each candidate i
// spread[i] = sum_{j >= i} log(x_j / x_i), from the top down without cancellation:
// spread[i] = spread[i+1] + (N - i - 1) * (log x_{i+1} - log x_i), exactly 0 for a tied top.
struct Sample {
  std::vector<double> x, log_x, spread;
  explicit Sample(std::vector<double> ascending) : x(std::move(ascending)) {
    const std::size_t n = x.size();
    log_x.resize(n);
    for (std::size_t i = 0; i < n; ++i) log_x[i] = std::log(x[i]);
    spread.assign(n, 0.0);
    for (std::size_t i = n == 0 ? 0 : n - 1; i-- > 0;)
      spread[i] = spread[i + 1] + static_cast<double>(n - i - 1) * (log_x[i + 1] - log_x[i]);
  }
  std::size_t size() const { return x.size(); }
};

// |theoretical CDF - empirical CDF| at the k-th point of the tail above candidate i, as WWFit
// writes it: 1 - (x / xmin)^(1 - alpha) - k / n (the power at x == xmin is 1, also for alpha = inf).
inline double ks_term(const Sample& s, std::size_t i, std::size_t k, double n, double one_minus_alpha) {
  const double delta = s.log_x[i + k] - s.log_x[i];
  const double power = delta == 0.0 ? 1.0 : std::exp(one_minus_alpha * delta);
  return std::abs(1.0 - power - static_cast<double>(k) / n);
}

// KS distance of candidate i, or NaN once it is certain not to beat (best_d, best_i): any partial
// maximum above best_d, or equal to it for a later candidate (the argmin keeps the first). Probes
// first the point `hint` (where the previous candidate's distance was largest or cut short: close
// candidates deviate most at about the same eigenvalue) and a coarse grid, then scans the tail;
// `hint` is updated.
double ks_distance_unless_beaten(const Sample& s, std::size_t i, double alpha, double best_d, std::size_t best_i,
                                 std::size_t& hint) {
  const std::size_t n = s.size() - i;
  const double nd = static_cast<double>(n);
  const double one_minus_alpha = 1.0 - alpha;
  const auto beaten = [&](double partial) { return partial > best_d || (partial == best_d && i > best_i); };
  double d = 0.0;
  std::size_t arg = 0;
  const auto visit = [&](std::size_t k) {
    const double t = ks_term(s, i, k, nd, one_minus_alpha);
    if (t > d) {
      d = t;
      arg = k;
    }
    if (!beaten(d)) return false;
    hint = i + arg;
    return true;
  };
  if (hint >= i && hint < s.size() && visit(hint - i)) return kNaN;
  const std::size_t stride = std::max<std::size_t>(1, n / kProbes);
  if (stride > 1)
    for (std::size_t k = stride / 2; k < n; k += stride)
      if (visit(k)) return kNaN;
  for (std::size_t k = 0; k < n; ++k)
    if (visit(k)) return kNaN;
  hint = i + arg;
  return d;
}

double full_ks_distance(const Sample& s, std::size_t i, double alpha) {
  std::size_t hint = 0;
  return ks_distance_unless_beaten(s, i, alpha, kInf, 0, hint);
}

std::size_t count_at_least(const Sample& s, double xmin) {
  return static_cast<std::size_t>(s.x.end() - std::lower_bound(s.x.begin(), s.x.end(), xmin));
}

// WWFit.fit_power_law_standard + the argmin of WWFit.__init__: alpha_i = 1 + n_i / spread_i.
PowerLawFit fit_standard(const Sample& s) {
  const std::size_t candidates = s.size() - 1;
  const auto alpha_of = [&](std::size_t i) {
    return s.spread[i] > 0.0 ? 1.0 + static_cast<double>(s.size() - i) / s.spread[i] : kInf;
  };
  double best_d = kInf;
  std::size_t best_i = candidates;
  std::size_t hint = 0;
  const auto consider = [&](std::size_t i) {
    const double d = ks_distance_unless_beaten(s, i, alpha_of(i), best_d, best_i, hint);
    if (!std::isnan(d)) {
      best_d = d;
      best_i = i;
    }
  };
  // A coarse pass, then the candidates around its best one, then all others: the distance is
  // about smooth in xmin, so the later ones are mostly cut short after a few exponentials.
  const std::size_t step = std::max<std::size_t>(1, candidates / kFirstPassCandidates);
  for (std::size_t i = 0; i < candidates; i += step) consider(i);
  const std::size_t lo = best_i >= step ? best_i - step : 0, hi = std::min(candidates, best_i + step);
  for (std::size_t i = lo; i < hi; ++i)
    if (i % step != 0) consider(i);
  for (std::size_t i = 0; i < candidates; ++i)
    if (i % step != 0 && (i < lo || i >= hi)) consider(i);

  PowerLawFit fit;
  fit.alpha = alpha_of(best_i);
  fit.xmin = s.x[best_i];
  fit.ks_distance = best_d;
  fit.n_tail = count_at_least(s, fit.xmin);
  if (!std::isfinite(fit.alpha)) fit.alpha = kNaN;  // a tied tail: WeightWatcher says inf
  return fit;
}

// WWFit.fit_powerlaw_smallN (fewer than 20 eigenvalues) as WWFit.__init__ then uses it: candidates
// are the tails of at least 8 with a spread above 1e-12, each with the bias-corrected
// alpha_i = 1 + (n_i - 1) / spread_i and its KS distance (the others keep D = 1, alpha = 0), and
// __init__ takes the argmin of D -- the 0.868 / sqrt(n) objective that fit_powerlaw_smallN ranks by
// is overridden. Without any candidate, the whole sample is the tail (i = 0), and a whole sample
// without spread has no alpha (WeightWatcher: 0.0, or a failed fit for a single eigenvalue).
PowerLawFit fit_small(const Sample& s) {
  const std::size_t n_all = s.size();
  const auto counted = [&](std::size_t i) {
    return n_all - i >= kSmallMinTail && s.spread[i] > kSmallDegenerateSpread;
  };
  const auto alpha_of = [&](std::size_t i) {
    return 1.0 + (static_cast<double>(n_all - i) - 1.0) / s.spread[i];
  };
  double best_d = kInf;
  std::size_t best_i = n_all;
  bool any = false;
  for (std::size_t i = 0; i + 1 < n_all; ++i) {
    const double d = counted(i) ? full_ks_distance(s, i, alpha_of(i)) : 1.0;
    any = any || counted(i);
    if (d < best_d) {
      best_d = d;
      best_i = i;
    }
  }
  PowerLawFit fit;
  if (any) {
    fit.alpha = counted(best_i) ? alpha_of(best_i) : kNaN;  // WeightWatcher's alpha 0 of a skipped tail
  } else if (n_all >= 2 && s.spread[0] > kSmallDegenerateSpread) {
    best_i = 0;
    fit.alpha = alpha_of(0);
    best_d = full_ks_distance(s, 0, fit.alpha);
  } else if (n_all >= 2) {
    best_i = 0;
    fit.alpha = kNaN;
    best_d = 1.0;
  } else {
    return {kNaN, kNaN, kNaN, 0};
  }
  fit.xmin = s.x[best_i];
  fit.ks_distance = best_d;
  fit.n_tail = count_at_least(s, fit.xmin);
  return fit;
}

PowerLawFit failed_fit() { return {kNaN, kNaN, kNaN, 0}; }

}  // namespace

PowerLawFit fit_power_law(std::span<const double> eigenvalues_desc) {
  std::vector<double> fitted;
  fitted.reserve(eigenvalues_desc.size());
  for (auto it = eigenvalues_desc.rbegin(); it != eigenvalues_desc.rend(); ++it) {
    if (!std::isfinite(*it)) return failed_fit();
    if (*it > kWeightWatcherEvalsThreshold) fitted.push_back(*it);
  }
  if (fitted.empty()) return failed_fit();
  if (!std::is_sorted(fitted.begin(), fitted.end())) std::sort(fitted.begin(), fitted.end());
  const Sample sample(std::move(fitted));
  return sample.size() < kSmallSample ? fit_small(sample) : fit_standard(sample);
}

WeightWatcherMetrics compute_ww_metrics(std::span<const double> eigenvalues_desc, std::uint64_t rows,
                                        std::uint64_t cols) {
  WeightWatcherMetrics m{kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, 0};
  const std::uint64_t big = std::max(rows, cols);
  const std::size_t count =
      static_cast<std::size_t>(std::min<std::uint64_t>(eigenvalues_desc.size(), std::min(rows, cols)));
  const std::span<const double> ev = eigenvalues_desc.first(count);

  double sum = 0.0, lambda_max = 0.0;
  for (auto it = ev.rbegin(); it != ev.rend(); ++it) {  // smallest first
    if (!std::isfinite(*it) || *it < 0.0) return m;
    sum += *it;
    lambda_max = std::max(lambda_max, *it);
  }
  if (!(lambda_max > 0.0)) return m;

  m.log_norm = std::log10(sum);
  m.log_spectral_norm = std::log10(lambda_max);
  m.stable_rank = sum / lambda_max;

  // RMT_Util.matrix_entropy(sqrt(evals), N): natural logs; rank as RMT_Util.matrix_rank.
  const double tolerance = std::sqrt(lambda_max) * static_cast<double>(big) * DBL_EPSILON;
  std::size_t rank = 0;
  double sv_sq_sum = 0.0;
  for (auto it = ev.rbegin(); it != ev.rend(); ++it) {
    const double sv = std::sqrt(*it);
    if (sv > tolerance) ++rank;
    sv_sq_sum += sv * sv;
  }
  double plogp = 0.0;
  for (double lambda : ev) {
    const double sv = std::sqrt(lambda);
    const double p = sv * sv / sv_sq_sum + kEntropyEpsilon;
    plogp += p * std::log(p);
  }
  m.entropy = -plogp / std::log(static_cast<double>(rank) + kEntropyEpsilon);

  const PowerLawFit fit = fit_power_law(ev);
  m.alpha = fit.alpha;
  m.alpha_weighted = fit.alpha * m.log_spectral_norm;
  m.xmin = fit.xmin;
  m.ks_distance = fit.ks_distance;
  m.n_tail = fit.n_tail;
  return m;
}

}  // namespace vindex
