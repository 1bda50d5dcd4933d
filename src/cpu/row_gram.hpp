// The Gram matrix of the rows of a matrix, with BLAS: phase 3's token Grams and the cross-model
// CKA's prompt Grams.
#pragma once

#include <cstddef>
#include <vector>

namespace vindex::cpu {

// X X^T ([s, s], full, row-major) of x ([s, h] row-major).
std::vector<double> row_gram(const std::vector<double>& x, std::size_t s, std::size_t h);

}  // namespace vindex::cpu
