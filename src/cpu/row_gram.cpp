// The Gram matrix of rows (see row_gram.hpp).
#include "row_gram.hpp"

#include "blas_lapack.hpp"

namespace vindex::cpu {

std::vector<double> row_gram(const std::vector<double>& x, std::size_t s, std::size_t h) {
  std::vector<double> gram(s * s, 0.0);
  if (s == 0 || h == 0) return gram;
  use_one_blas_thread();  // ranks share the node's cores
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, static_cast<int>(s), static_cast<int>(h), 1.0, x.data(),
              static_cast<int>(h), 0.0, gram.data(), static_cast<int>(s));
  for (std::size_t i = 0; i < s; ++i)
    for (std::size_t j = 0; j < i; ++j) gram[j * s + i] = gram[i * s + j];
  return gram;
}

}  // namespace vindex::cpu
