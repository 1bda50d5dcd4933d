// The backend-free accuracy policy (README, "Accuracy"): which precision a run asks for, and when
// a float32 Gram matrix is accurate enough to stand for the matrix.
#pragma once

#include <cstdint>
#include <span>

namespace vindex {

enum class FloatBits : std::uint8_t { fp32 = 32, fp64 = 64 };
// automatic: float32 Gram matrix and float64 eigensolver where the Gram's rounding bound meets the
//            accuracy targets, float64 for both otherwise;
// fp32:      float32 for both (fastest; its accuracy is measured, not bounded: README, "Accuracy");
// fp64:      float64 for both.
enum class PrecisionPolicy : std::uint8_t { automatic, fp32, fp64 };

const char* precision_policy_name(PrecisionPolicy policy);

// Accuracy targets of the project against a float64 SVD of the same dequantized matrix.
struct AccuracyTargets {
  double singular_value = 1e-4;  // |sigma_i - ref_i| <= this * sigma_max
  double var_at_k = 1e-6;        // |var@k - ref| absolute
};

// True when a float32 Gram matrix stands for the matrix at all, checked before any eigensolver
// sees it, for every precision that forms one (README, "Accuracy"): `trace` (the sum of its
// float32 diagonal, in float64) must be finite, at most a quarter of float32's largest value, and
// equal to the float64 sum of squares `frobenius_sq` within the worst-case float32 rounding of a
// sum of `long_dim` non-negative products; and the matrix's norm must be large enough that
// products lost to float32 underflow cannot matter. Overflow (Inf, NaN) and underflow (products
// flushed to zero: a float32 Gram that looks like zero) fail it; the matrix is then computed in
// float64. `n` is the Gram's order (the smaller dimension).
bool float32_gram_is_sound(double trace, double frobenius_sq, std::uint64_t n, std::uint64_t long_dim);

// True when eigenvalues of the float32 Gram matrix (taken in float64) are within a quarter of the
// targets under the model |lambda_i error| <= eps32 * lambda_max: Weyl's inequality with the
// Gram's rounding error, measured at 0.10-0.16 eps32 * lambda_max (README, "Accuracy"). False
// for a non-finite eigenvalue, and for all-zero eigenvalues of a non-zero matrix.
bool float32_gram_is_accurate(std::span<const double> eigenvalues, double frobenius_sq, std::span<const int> ks,
                              const AccuracyTargets& targets = {});

}  // namespace vindex
