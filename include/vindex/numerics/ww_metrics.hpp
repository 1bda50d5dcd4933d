// WeightWatcher's per-matrix metrics (weightwatcher 0.7.7, analyze() defaults on the CPU) from the
// eigenvalues sigma_i^2 of one matrix: the power-law exponent alpha with its KS-chosen xmin, and
// alpha_weighted, stable_rank, matrix entropy, log_norm and log_spectral_norm. The definitions, and
// where they come from in WeightWatcher's source, are in docs/weightwatcher.md ("Definitions").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vindex {

// WeightWatcher fits only the eigenvalues above this (EVALS_THRESH on the CPU).
inline constexpr double kWeightWatcherEvalsThreshold = 1e-5;

// Continuous power law p(x) ~ x^-alpha for x >= xmin, fitted as WeightWatcher's own fitter
// (WW_powerlaw.WWFit, its default) does: every fitted eigenvalue but the largest is a candidate
// xmin, alpha is the MLE of the tail above it, and xmin is the candidate of least KS distance
// (samples below 20 eigenvalues: WeightWatcher's small-sample rule). n_tail counts the eigenvalues
// >= xmin (WeightWatcher's num_pl_spikes).
struct PowerLawFit {
  double alpha = 0;
  double xmin = 0;
  double ks_distance = 0;
  std::size_t n_tail = 0;
};

struct WeightWatcherMetrics {
  double alpha = 0;              // PowerLawFit::alpha
  double alpha_weighted = 0;     // alpha * log10(lambda_max)
  double xmin = 0;               // PowerLawFit::xmin
  double ks_distance = 0;        // PowerLawFit::ks_distance (WeightWatcher's column D)
  double stable_rank = 0;        // sum(lambda) / lambda_max
  double entropy = 0;            // matrix entropy: Shannon entropy of lambda / sum(lambda) over log(rank)
  double log_norm = 0;           // log10(sum(lambda)) = log10 ||W||_F^2
  double log_spectral_norm = 0;  // log10(lambda_max) = log10 sigma_max^2
  std::size_t n_tail = 0;        // PowerLawFit::n_tail
};

// `eigenvalues_desc`: sigma_i^2 of one matrix, descending, non-negative. Fits the values above
// kWeightWatcherEvalsThreshold. No such value: every field NaN and n_tail 0 (WeightWatcher's fit
// fails and reports -1). A tail without spread (all its values equal, where WeightWatcher reports
// alpha = inf, or 1.0 in its small-sample rule): alpha NaN, the rest as WeightWatcher reports it.
// Cost: n logarithms plus the exponentials of the KS distances, most of them cut short once they
// cannot win (still exactly WeightWatcher's choice): 6n to 17n measured at n = 2048, about 0.1-0.3
// ms; n^2 / 2 at worst.
PowerLawFit fit_power_law(std::span<const double> eigenvalues_desc);

// All metrics of a rows x cols matrix from its eigenvalues (descending, non-negative). Like
// WeightWatcher, uses the min(rows, cols) largest; the rank in the entropy counts the singular
// values above sigma_max * max(rows, cols) * DBL_EPSILON. No eigenvalue or all zero: NaN
// everywhere, n_tail 0.
WeightWatcherMetrics compute_ww_metrics(std::span<const double> eigenvalues_desc, std::uint64_t rows,
                                        std::uint64_t cols);

}  // namespace vindex
