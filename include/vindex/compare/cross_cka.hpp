// Cross-model CKA (docs/cross_cka.md): the linear CKA between every representation of one model and
// every representation of another, over the same prompts, from per-prompt pooled vectors (the mean
// over a prompt's tokens, or its last token). Two estimators, both always computed: the debiased
// CKA (U-centred Grams; the default, since a few hundred prompts against hundreds of dimensions
// inflate the plain estimator) and the plain CKA (centred Grams), both reusing phase 3's Gram
// normalisation and alignment. Backend-free: the Gram products X X^T are computed by the caller.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vindex/compare/pooled_capture.hpp"

namespace vindex {

enum class CkaEstimator { debiased, plain };
inline constexpr std::array<CkaEstimator, 2> kEstimators{CkaEstimator::debiased, CkaEstimator::plain};
const char* estimator_name(CkaEstimator estimator);
inline constexpr std::size_t kCkaTables = kPoolings.size() * kEstimators.size();
// The index of a (pooling, estimator) table: pooling-major.
std::size_t table_index(Pooling pooling, CkaEstimator estimator);

// The debiased CKA needs n >= 4 (its U-centring divides by n - 1, n - 2 and n - 3). Every
// representation's Grams are n x n (four of them, float64) and rank 0 holds all of them: a job
// whose Grams would need more than kMaxGramBytes on rank 0 is refused before any is computed (the
// seed uses 256 prompts: 2 MiB per representation).
inline constexpr std::uint64_t kMinCkaPrompts = 4;
inline constexpr std::uint64_t kMaxGramBytes = std::uint64_t{16} << 30;
// The bytes of all Grams of `representations` representations over `prompts` prompts.
std::uint64_t gram_bytes(std::uint64_t representations, std::uint64_t prompts);

// One representation's normalised Grams, one per table.
struct RepresentationGrams {
  int model = 0;  // 0 or 1: which capture
  int index = 0;  // which representation of it
  std::array<std::vector<double>, kCkaTables> grams;
};

// Both estimators' normalised Grams from the Gram `k` ([n, n]) of one pooling's column-centred
// vectors: plain = k / |k|, debiased = U(k) / |U(k)|.
void estimator_grams(std::vector<double> k, std::size_t n, std::vector<double>& plain, std::vector<double>& debiased);

struct CrossCkaModel {
  PooledCaptureInfo info;
  std::vector<double> depth;  // normalised depth of each representation: r / (R - 1) (0 when R is 1)
};

struct BestMatch {
  int layer = 0;        // a representation of one model
  double depth = 0;
  int match = 0;        // the other model's representation with the largest CKA to it (first of ties)
  double match_depth = 0;
  double cka = 0;
};

struct MatchedDepth {
  double depth = 0;  // of layer_a
  int layer_a = 0;
  int layer_b = 0;   // round(depth * (R_b - 1)), halves up: the nearest normalised depth in b
  double cka = 0;
};

struct CkaTable {
  std::vector<double> matrix;  // [R_a, R_b] row-major: CKA(a_i, b_j)
  std::vector<BestMatch> best_a, best_b;
  std::vector<MatchedDepth> matched;
};

struct CrossCkaResults {
  std::array<CrossCkaModel, 2> models;
  std::uint64_t prompts = 0;
  std::string prompt_set_sha256;
  CkaEstimator default_estimator = CkaEstimator::debiased;
  std::array<CkaTable, kCkaTables> tables;  // by table_index
};

double normalised_depth(std::size_t r, std::size_t count);

// Every table from all representations' Grams (in any order; each of both models exactly once). A
// representation whose Grams are all zero has CKA 0, except with itself when a capture is compared
// with itself (the same path).
CrossCkaResults cross_cka(const std::array<PooledCaptureInfo, 2>& infos, std::span<const RepresentationGrams> grams,
                          CkaEstimator default_estimator, std::string prompt_set_sha256);

void encode_grams(std::span<const RepresentationGrams> grams, std::vector<std::byte>& out);
std::vector<RepresentationGrams> decode_grams(std::span<const std::byte> bytes);

}  // namespace vindex
