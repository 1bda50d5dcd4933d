// Gram matrix of the smaller side, accumulated chunk by chunk with syrk, then eigenvalues.
#include "gram_eigen_solver.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "blas_lapack.hpp"
#include "vindex/base/errors.hpp"

namespace vindex::cpu {
namespace {

constexpr std::uint64_t kChunkBytes = 8ull << 20;

int as_blas_int(std::uint64_t v, const EncodedMatrix& m) {
  if (v > static_cast<std::uint64_t>(INT_MAX))
    throw InputError(m.weight.file(), m.weight.name(), "matrix dimension exceeds the BLAS integer range");
  return static_cast<int>(v);
}

}  // namespace

template <typename T>
double GramEigenSolver::gram(const EncodedMatrix& m, const MatrixDecoder& decoder, AlignedBuffer<T>& chunk_buf, T* gram) {
  // G = W^T W when rows >= cols (chunks of rows), else W W^T (chunks of columns): n = min(rows, cols).
  const bool tall = m.rows >= m.cols;
  const std::uint64_t n = m.min_dim();
  const std::uint64_t long_dim = m.max_dim();
  const int n_int = as_blas_int(n, m);

  // Chunks of the long dimension, a multiple of 128 so fp8 scale blocks are not split.
  std::uint64_t chunk = kChunkBytes / (n * sizeof(T)) / 128 * 128;
  chunk = std::min<std::uint64_t>(std::max<std::uint64_t>(chunk, 128), long_dim);
  T* buf = chunk_buf.reserve(chunk * n);

  double frobenius_sq = 0.0;
  for (std::uint64_t start = 0; start < long_dim; start += chunk) {
    const std::uint64_t len = std::min(chunk, long_dim - start);
    const T beta = start == 0 ? T(0) : T(1);
    if (tall) {
      // Rows [start, start+len) row-major are, column-major, an n x len matrix A: G += A A^T.
      frobenius_sq += decoder.decode(start, start + len, 0, m.cols, buf, n);
      syrk_lower(false, n_int, static_cast<int>(len), buf, n_int, beta, gram, n_int);
    } else {
      // Columns [start, start+len) of every row, row-major (n x len), are column-major a len x n
      // matrix A: G += A^T A.
      frobenius_sq += decoder.decode(0, m.rows, start, start + len, buf, len);
      syrk_lower(true, n_int, static_cast<int>(len), buf, static_cast<int>(len), beta, gram, n_int);
    }
  }
  return frobenius_sq;
}

template <typename T>
std::vector<double> GramEigenSolver::eigenvalues(std::uint64_t n, T* gram, std::vector<T>& w) {
  w.resize(n);
  eigenvalues_lower(static_cast<int>(n), gram, static_cast<int>(n), w.data());
  std::vector<double> descending(n);
  for (std::uint64_t i = 0; i < n; ++i) descending[i] = std::max(static_cast<double>(w[n - 1 - i]), 0.0);
  return descending;
}

MatrixSpectrum GramEigenSolver::solve(const EncodedMatrix& m, PrecisionPolicy policy, std::span<const int> ks) {
  try {
    return compute(m, policy, ks);
  } catch (const LibraryError& e) {
    throw LibraryError(e, m.weight.file(), m.weight.name());
  }
}

MatrixSpectrum GramEigenSolver::compute(const EncodedMatrix& m, PrecisionPolicy policy, std::span<const int> ks) {
  const std::uint64_t n = m.min_dim();
  if (n * n > (std::uint64_t{1} << 34))
    throw InputError(m.weight.file(), m.weight.name(), fmt::format("a {}x{} Gram matrix is too large", n, n));
  MatrixSpectrum s;
  if (n == 0) return s;  // an empty matrix has no singular values (and a zero norm)
  const MatrixDecoder decoder(m, bytes_);  // reads the matrix's bytes once, for either precision
  s.weight_digest = decoder.digest();
  if (policy != PrecisionPolicy::fp64) {
    float* g32 = gram32_.reserve(n * n);
    s.frobenius_sq = gram(m, decoder, chunk32_, g32);
    double trace = 0;
    for (std::uint64_t i = 0; i < n; ++i) trace += g32[i + i * n];
    // An overflowed or underflowed float32 Gram (an extreme but finite block scale) is not the
    // matrix's: float64 instead, under fp32 too (README, "Accuracy").
    if (float32_gram_is_sound(trace, s.frobenius_sq, n, m.max_dim())) {
      s.gram_bits = FloatBits::fp32;
      if (policy == PrecisionPolicy::fp32) {
        s.eigen_bits = FloatBits::fp32;
        s.eigenvalues = eigenvalues(n, g32, w32_);
        if (std::all_of(s.eigenvalues.begin(), s.eigenvalues.end(), [](double e) { return std::isfinite(e); })) return s;
      } else {
        // The float32 Gram, widened: a float64 eigensolver removes the float32 solver's error,
        // which is 100x that of the Gram product itself (README, "Accuracy").
        double* g64 = gram64_.reserve(n * n);
        for (std::uint64_t j = 0; j < n; ++j)
          for (std::uint64_t i = j; i < n; ++i) g64[i + j * n] = g32[i + j * n];
        s.eigen_bits = FloatBits::fp64;
        s.eigenvalues = eigenvalues(n, g64, w64_);
        if (float32_gram_is_accurate(s.eigenvalues, s.frobenius_sq, ks)) return s;
      }
    }
  }
  double* g64 = gram64_.reserve(n * n);
  s.frobenius_sq = gram(m, decoder, chunk64_, g64);
  s.gram_bits = FloatBits::fp64;
  s.eigen_bits = FloatBits::fp64;
  s.eigenvalues = eigenvalues(n, g64, w64_);
  return s;
}

}  // namespace vindex::cpu
