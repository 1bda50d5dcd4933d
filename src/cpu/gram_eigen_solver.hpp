// One CPU thread's spectrum solver: streams the dequantized matrix through a Gram update in
// chunks of the long dimension (so the whole matrix is never held), then takes the Gram matrix's
// eigenvalues with LAPACK. Precisions follow PrecisionPolicy (vindex/run/backend.hpp).
#pragma once

#include <span>
#include <vector>

#include "vindex/base/aligned_buffer.hpp"
#include "vindex/run/backend.hpp"

namespace vindex::cpu {

class GramEigenSolver {
 public:
  // `ks`: the k values of var@k the result must be accurate for. A float32 Gram matrix that
  // overflowed or underflowed (float32_gram_is_sound) is replaced by a float64 one under every
  // precision, recorded in gram_bits and eigen_bits. A BLAS or LAPACK failure is a LibraryError
  // naming the matrix's file and tensor.
  MatrixSpectrum solve(const EncodedMatrix& matrix, PrecisionPolicy policy, std::span<const int> ks);

 private:
  MatrixSpectrum compute(const EncodedMatrix& matrix, PrecisionPolicy policy, std::span<const int> ks);
  // Accumulates the Gram matrix of the smaller side into `gram` (lower triangle, n x n) and
  // returns the float64 sum of squares of the entries.
  template <typename T>
  double gram(const EncodedMatrix& matrix, const MatrixDecoder& decoder, AlignedBuffer<T>& chunk, T* gram);
  // Eigenvalues of the lower triangle of `gram` (destroyed), descending and clamped at 0.
  template <typename T>
  std::vector<double> eigenvalues(std::uint64_t n, T* gram, std::vector<T>& w);

  std::vector<std::byte> bytes_;  // the stored bytes of the matrix being solved
  AlignedBuffer<float> chunk32_, gram32_;
  AlignedBuffer<double> chunk64_, gram64_;
  std::vector<float> w32_;
  std::vector<double> w64_;
};

}  // namespace vindex::cpu
