// Spectral statistics of one matrix and the order statistics that reduce them per layer.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace vindex {

// Per-matrix statistics from the eigenvalues of its Gram matrix (sigma_i^2, descending, clamped
// at 0) and its squared Frobenius norm summed in float64 from the entries.
struct MatrixStats {
  std::vector<double> var_at_k;  // one per requested k: sum of the k largest sigma^2 / ||W||_F^2
  double top_sv = 0;             // sigma_0
  double sv_ratio = 0;           // sigma_0 / sigma_1 (NaN when undefined)
  double frobenius_norm = 0;     // ||W||_F
  double stable_rank = 0;        // ||W||_F^2 / sigma_0^2
  double effective_rank = 0;     // exp(entropy of sigma^2 / sum sigma^2)
  // WeightWatcher's metrics (vindex/numerics/ww_metrics.hpp, docs/weightwatcher.md); NaN where undefined.
  double alpha = std::numeric_limits<double>::quiet_NaN();           // power-law exponent of the eigenvalue tail
  double alpha_weighted = std::numeric_limits<double>::quiet_NaN();  // alpha * log10(sigma_0^2)
  double alpha_xmin = std::numeric_limits<double>::quiet_NaN();      // start of the fitted tail
  double alpha_ks_distance = std::numeric_limits<double>::quiet_NaN();  // KS distance of the fit
  double matrix_entropy = std::numeric_limits<double>::quiet_NaN();  // entropy of sigma^2/sum over log(rank)
  double log_norm = std::numeric_limits<double>::quiet_NaN();        // log10 ||W||_F^2
  double log_spectral_norm = std::numeric_limits<double>::quiet_NaN();  // log10 sigma_0^2
};

// The per-matrix scalar statistics, by the name they have in vindex.h5 (one dataset each) and in
// the JSON summaries (median_<name>); one table so that every writer and reader agrees.
struct ScalarStat {
  const char* name;
  double MatrixStats::*member;
};
inline constexpr std::array<ScalarStat, 12> kScalarStats{{
    {"top_sv", &MatrixStats::top_sv},
    {"sv_ratio", &MatrixStats::sv_ratio},
    {"frobenius_norm", &MatrixStats::frobenius_norm},
    {"stable_rank", &MatrixStats::stable_rank},
    {"effective_rank", &MatrixStats::effective_rank},
    {"alpha", &MatrixStats::alpha},
    {"alpha_weighted", &MatrixStats::alpha_weighted},
    {"alpha_xmin", &MatrixStats::alpha_xmin},
    {"alpha_ks_distance", &MatrixStats::alpha_ks_distance},
    {"matrix_entropy", &MatrixStats::matrix_entropy},
    {"log_norm", &MatrixStats::log_norm},
    {"log_spectral_norm", &MatrixStats::log_spectral_norm},
}};

// The WeightWatcher metrics of a rows x cols matrix, written into `stats`.
void add_weightwatcher_metrics(std::span<const double> eigenvalues, std::uint64_t rows, std::uint64_t cols,
                               MatrixStats& stats);

// `eigenvalues` descending and non-negative. var@k uses ||W||_F^2 as the denominator rather than
// the eigenvalue sum, so errors of the many small eigenvalues do not add up (see README,
// "Accuracy"); a k at or beyond the number of eigenvalues gives exactly 1.
MatrixStats compute_matrix_stats(std::span<const double> eigenvalues, double frobenius_sq, std::span<const int> ks);

// Quantile with linear interpolation between order statistics (numpy's default method).
// `sorted` must be ascending and non-empty.
double quantile_sorted(std::span<const double> sorted, double q);

struct Summary {
  double min = 0, q25 = 0, median = 0, q75 = 0, max = 0, mean = 0;
};
// Order statistics of the finite values; NaNs are skipped (all NaN gives NaN everywhere).
Summary summarize(std::span<const double> values);

}  // namespace vindex
