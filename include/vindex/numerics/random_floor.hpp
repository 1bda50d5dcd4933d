// The random floor of var@k: the var@k a matrix of the same shape with independent Gaussian entries
// has, so that a layer's var@k can be read against what its shape alone gives (var@64 is about 0.069
// for a random 7168 x 2048 matrix but 0.24 for 1536 x 576).
//
// As rows and cols grow at a fixed ratio c = min/max, the eigenvalues of such a matrix's Gram
// (divided by the longer side) follow the Marchenko-Pastur law with ratio c: density
// sqrt((b - x)(x - a)) / (2 pi c x) on [a, b] = [(1 - sqrt c)^2, (1 + sqrt c)^2], mean 1. var@k is
// then the law's first moment above its (1 - k/min) quantile. Finite matrices differ from it by a
// fraction of a percent, mostly above it (the largest eigenvalues fluctuate upward): against numpy
// SVDs of seeded random matrices (tests/fixtures/reference/random_floor.json) within 0.4% from
// 1000 x 100 to 7168 x 2048.
#pragma once

#include <cstdint>

namespace vindex {

// The Marchenko-Pastur expectation of var@k for a rows x cols Gaussian matrix: in (0, 1], and 1
// when k >= min(rows, cols). rows, cols and k must be at least 1.
double random_floor_var_at_k(std::uint64_t rows, std::uint64_t cols, int k);

}  // namespace vindex
