// Spectral statistics of one matrix and the order statistics that reduce them per layer.
#pragma once

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
};

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
