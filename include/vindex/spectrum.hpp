// The spectrum step as a backend interface: a backend turns encoded weight matrices into the
// eigenvalues of their Gram matrices (sigma_i^2). The CPU backend (src/cpu) uses LAPACK; a GPU
// backend implements the same interface. Also here: the backend-free accuracy policy that
// decides when a float32 Gram matrix is accurate enough (README, "Accuracy").
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vindex/dequantize.hpp"

namespace vindex {

enum class FloatBits : std::uint8_t { fp32 = 32, fp64 = 64 };
// automatic: float32 Gram matrix and float64 eigensolver where the Gram's rounding bound meets the
//            accuracy targets, float64 for both otherwise;
// fp32:      float32 for both (fastest; its accuracy is measured, not bounded: README, "Accuracy");
// fp64:      float64 for both.
enum class PrecisionPolicy : std::uint8_t { automatic, fp32, fp64 };

const char* precision_policy_name(PrecisionPolicy policy);

struct MatrixSpectrum {
  std::vector<double> eigenvalues;  // sigma_i^2, descending, clamped at 0; min(rows, cols) values
  double frobenius_sq = 0;          // sum of squares of the dequantized entries, in float64
  FloatBits gram_bits = FloatBits::fp32;   // precision of the Gram product
  FloatBits eigen_bits = FloatBits::fp64;  // precision of the eigensolver
  std::uint64_t weight_digest = 0;         // MatrixDecoder::digest() of the bytes read
};

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

// Receives results from a backend; called from the backend's threads.
class SpectrumSink {
 public:
  virtual ~SpectrumSink() = default;
  virtual void deliver(std::size_t index, MatrixSpectrum&& spectrum) = 0;
  virtual void fail(std::size_t index, std::exception_ptr error) = 0;
  // Polled between matrices: true once the job is failing elsewhere or was cancelled.
  virtual bool should_stop() const = 0;
};

class SpectrumBackend {
 public:
  virtual ~SpectrumBackend() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;  // settings and libraries, for provenance
  // Computes every matrix's spectrum, delivering each as it completes, in any order. Returns when
  // all are delivered, or early after a failure or once the sink asks to stop.
  virtual void compute(std::span<const EncodedMatrix> matrices, SpectrumSink& sink) = 0;
};

struct CpuBackendOptions {
  int threads = 1;  // matrices computed concurrently, each with single-threaded BLAS
  PrecisionPolicy precision = PrecisionPolicy::automatic;
  std::vector<int> ks{64};  // the k values of var@k, for the accuracy policy
};

std::unique_ptr<SpectrumBackend> make_cpu_backend(const CpuBackendOptions& options);

}  // namespace vindex
