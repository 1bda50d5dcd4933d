// When is a float32 Gram matrix good enough? An a-posteriori bound from its eigenvalues.
//
// Eigenvalues of the float32 Gram matrix, taken with a float64 eigensolver, differ from the exact
// ones by at most ||E||_2 (Weyl), E the rounding error of the float32 Gram product. We model
// ||E||_2 <= kappa * eps32 * lambda_max with kappa = 1: the largest error measured on 7168 x 2048
// and 2048 x 512 matrices with Marchenko-Pastur, flat and power-law spectra was 0.16 (README,
// "Accuracy"). A result is kept only when the implied worst-case errors are a quarter of the
// targets; a float32 eigensolver is far less accurate (measured 18-81 eps32 * lambda_max on flat
// spectra) and is never chosen automatically.
#include <cmath>
#include <limits>

#include "vindex/spectrum.hpp"

namespace vindex {

namespace {
constexpr double kKappa = 1.0;
constexpr double kMargin = 0.25;
}  // namespace

const char* precision_policy_name(PrecisionPolicy policy) {
  switch (policy) {
    case PrecisionPolicy::automatic: return "auto";
    case PrecisionPolicy::fp32: return "fp32";
    case PrecisionPolicy::fp64: return "fp64";
  }
  return "?";
}

bool float32_gram_is_accurate(std::span<const double> eig, double frobenius_sq, std::span<const int> ks,
                              const AccuracyTargets& targets) {
  if (eig.empty() || !(eig[0] > 0) || !(frobenius_sq > 0)) return true;  // zero matrix: exact either way
  const double lambda_max = eig[0];
  const double delta = kKappa * std::numeric_limits<float>::epsilon() * lambda_max;
  const double sigma_max = std::sqrt(lambda_max);

  // A singular value's error is largest for the smallest eigenvalue: sqrt(l + d) - sqrt(l - d).
  const double lambda_min = eig.back();
  const double sv_error = std::sqrt(lambda_min + delta) - std::sqrt(std::max(lambda_min - delta, 0.0));
  if (sv_error > kMargin * targets.singular_value * sigma_max) return false;

  // var@k sums k eigenvalues over an exact denominator, so its error grows with k; a k at or past
  // n gives exactly 1 and needs no check.
  for (int k : ks) {
    const auto kk = static_cast<std::size_t>(k);
    if (kk < eig.size() && static_cast<double>(kk) * delta / frobenius_sq > kMargin * targets.var_at_k) return false;
  }
  return true;
}

}  // namespace vindex
