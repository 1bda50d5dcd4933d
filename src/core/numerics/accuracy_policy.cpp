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
#include <cstdint>
#include <limits>

#include "vindex/numerics/accuracy_policy.hpp"

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

// Soundness of a float32 Gram matrix G = fl32(W^T W) (n x n, from long_dim = m rows), before its
// accuracy is weighed (float32_gram_is_accurate, above):
//
// * Overflow. A float32 Gram whose trace is finite and at most FLT_MAX / 4 has no Inf or NaN
//   anywhere: every partial sum of an off-diagonal entry is bounded by the geometric mean of two
//   diagonal entries (Cauchy-Schwarz on any subset of the m terms), so nothing overflows on the
//   way, and the eigenvalues (at most the trace) fit even a float32 eigensolver.
// * Rounding. Each diagonal entry is a float32 sum of m non-negative float32 products; in any
//   summation order (BLAS blocks and reorders it) its relative error is at most
//   gamma_(m+1) = (m+1) u / (1 - (m+1) u), u = 2^-24 (Higham, Accuracy and Stability, Lemma 3.1
//   with the products' own rounding), so the trace, summed in float64, is within gamma_(m+1) of
//   the exact sum of squares. That sum the decoder computes in float64 from the same float32
//   values (each square exact in float64), within (n m) 2^-53; the trace's float64 sum adds n 2^-53.
//   A larger difference means the float32 Gram is not the matrix's: an overflowed entry, or
//   products flushed to zero by underflow (a tiny block scale makes the whole float32 Gram zero
//   while the float64 norm is positive). For m = 7168 the tolerance is 4.3e-4 relative.
// * Underflow. Below float32's normal range a product is rounded to a multiple of 2^-149, an
//   absolute error of at most 2^-150 that the relative bound above does not cover, so each Gram
//   entry may be off by m 2^-150 more and ||E||_2 <= ||E||_F <= n m 2^-150. The accuracy policy
//   budgets eps32 lambda_max for ||E||_2, and lambda_max >= trace / n = ||W||_F^2 / n; requiring
//   ||W||_F^2 >= n^2 m 2^-122 keeps the underflow term at most 1/32 of that budget (then
//   n m 2^-150 <= 2^-23 (||W||_F^2 / n) / 32). For a Kimi-K2 expert (n = 2048, m = 7168) that
//   floor is 5.7e-27, far below any real weight matrix's norm; it catches matrices whose products
//   sit in float32's subnormal range, where the trace check alone could pass.
bool float32_gram_is_sound(double trace, double frobenius_sq, std::uint64_t n, std::uint64_t long_dim) {
  if (!std::isfinite(trace) || !std::isfinite(frobenius_sq)) return false;
  if (frobenius_sq == 0) return trace == 0;  // the zero matrix: exact in any precision
  if (trace > static_cast<double>(std::numeric_limits<float>::max()) / 4) return false;
  const double m = static_cast<double>(long_dim), nn = static_cast<double>(n);
  const double terms_u = (m + 1) * 0x1p-24;
  if (terms_u >= 0.5) return false;  // no useful bound (a long side of 8 million or more)
  const double tolerance = terms_u / (1 - terms_u) + (nn * m + nn) * 0x1p-53;
  if (std::abs(trace - frobenius_sq) > tolerance * frobenius_sq) return false;
  return frobenius_sq >= nn * nn * m * 0x1p-122;
}

bool float32_gram_is_accurate(std::span<const double> eig, double frobenius_sq, std::span<const int> ks,
                              const AccuracyTargets& targets) {
  if (eig.empty() || frobenius_sq == 0) return true;  // zero matrix: exact either way
  for (double e : eig)
    if (!std::isfinite(e)) return false;
  // All-zero (or negative) eigenvalues of a non-zero matrix: the float32 Gram lost the matrix.
  if (!(eig[0] > 0) || !(frobenius_sq > 0)) return false;
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
