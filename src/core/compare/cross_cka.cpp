// Cross-model CKA (see vindex/compare/cross_cka.hpp and docs/cross_cka.md).
#include "vindex/compare/cross_cka.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "../base/byte_codec.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/phase3/statistics.hpp"

namespace vindex {
namespace {

// For every representation of `from`, the representation of the other model with the largest CKA.
std::vector<BestMatch> best_matches(const CkaTable& t, const CrossCkaResults& r, int from) {
  const std::size_t ra = r.models[0].depth.size(), rb = r.models[1].depth.size();
  const std::size_t rows = from == 0 ? ra : rb, cols = from == 0 ? rb : ra;
  const auto& own = r.models[static_cast<std::size_t>(from)].depth;
  const auto& other = r.models[static_cast<std::size_t>(1 - from)].depth;
  std::vector<BestMatch> out;
  for (std::size_t i = 0; i < rows; ++i) {
    BestMatch m{static_cast<int>(i), own[i], 0, other[0], -std::numeric_limits<double>::infinity()};
    for (std::size_t j = 0; j < cols; ++j) {
      const double v = from == 0 ? t.matrix[i * rb + j] : t.matrix[j * rb + i];
      if (v > m.cka) {
        m.cka = v;
        m.match = static_cast<int>(j);
        m.match_depth = other[j];
      }
    }
    out.push_back(m);
  }
  return out;
}

}  // namespace

const char* estimator_name(CkaEstimator estimator) { return estimator == CkaEstimator::debiased ? "debiased" : "plain"; }

std::size_t table_index(Pooling pooling, CkaEstimator estimator) {
  return static_cast<std::size_t>(pooling) * kEstimators.size() + static_cast<std::size_t>(estimator);
}

std::uint64_t gram_bytes(std::uint64_t representations, std::uint64_t prompts) {
  return representations * kCkaTables * prompts * prompts * sizeof(double);
}

double normalised_depth(std::size_t r, std::size_t count) {
  return count > 1 ? static_cast<double>(r) / static_cast<double>(count - 1) : 0.0;
}

void estimator_grams(std::vector<double> k, std::size_t n, std::vector<double>& plain, std::vector<double>& debiased) {
  if (n < kMinCkaPrompts) throw InternalError(fmt::format("debiased CKA of {} prompts", n));
  debiased = k;
  u_center_gram(debiased, n);
  normalize_gram(debiased);
  plain = std::move(k);
  normalize_gram(plain);
}

CrossCkaResults cross_cka(const std::array<PooledCaptureInfo, 2>& infos, std::span<const RepresentationGrams> grams,
                          CkaEstimator default_estimator, std::string prompt_set_sha256) {
  CrossCkaResults r;
  r.prompts = infos[0].n_prompts;
  r.prompt_set_sha256 = std::move(prompt_set_sha256);
  r.default_estimator = default_estimator;
  std::array<std::vector<const RepresentationGrams*>, 2> by_model;
  for (std::size_t m = 0; m < 2; ++m) {
    r.models[m].info = infos[m];
    const std::size_t count = infos[m].n_representations;
    for (std::size_t i = 0; i < count; ++i) r.models[m].depth.push_back(normalised_depth(i, count));
    by_model[m].assign(count, nullptr);
  }
  for (const RepresentationGrams& g : grams) {
    if (g.model < 0 || g.model > 1 || g.index < 0 ||
        static_cast<std::size_t>(g.index) >= by_model[static_cast<std::size_t>(g.model)].size() ||
        by_model[static_cast<std::size_t>(g.model)][static_cast<std::size_t>(g.index)] != nullptr)
      throw InternalError(fmt::format("cross-CKA Grams: unexpected representation {} of model {}", g.index, g.model));
    by_model[static_cast<std::size_t>(g.model)][static_cast<std::size_t>(g.index)] = &g;
  }
  for (const auto& model : by_model)
    for (const RepresentationGrams* g : model)
      if (g == nullptr) throw InternalError("cross-CKA Grams: a representation is missing");
  const std::size_t ra = by_model[0].size(), rb = by_model[1].size();
  const bool same = infos[0].path == infos[1].path;  // a capture against itself
  for (std::size_t t = 0; t < kCkaTables; ++t) {
    CkaTable& table = r.tables[t];
    table.matrix.resize(ra * rb);
    for (std::size_t i = 0; i < ra; ++i)
      for (std::size_t j = 0; j < rb; ++j)
        table.matrix[i * rb + j] = gram_alignment(by_model[0][i]->grams[t], by_model[1][j]->grams[t], same && i == j);
    table.best_a = best_matches(table, r, 0);
    table.best_b = best_matches(table, r, 1);
    for (std::size_t i = 0; i < ra; ++i) {
      // j = round(i (R_b - 1) / (R_a - 1)), halves up, in integers: exact where floating point
      // would turn 25.5 into 25.4999...
      const std::size_t j = ra > 1 ? (2 * i * (rb - 1) + (ra - 1)) / (2 * (ra - 1)) : 0;
      table.matched.push_back({r.models[0].depth[i], static_cast<int>(i), static_cast<int>(j), table.matrix[i * rb + j]});
    }
  }
  return r;
}

void encode_grams(std::span<const RepresentationGrams> grams, std::vector<std::byte>& out) {
  ByteWriter w(out);
  w.put<std::uint64_t>(grams.size());
  for (const RepresentationGrams& g : grams) {
    w.put<std::int32_t>(g.model);
    w.put<std::int32_t>(g.index);
    for (const auto& gram : g.grams) w.put_array<double>(gram);
  }
}

std::vector<RepresentationGrams> decode_grams(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  const auto count = r.get<std::uint64_t>();
  if (count > bytes.size()) throw InternalError("malformed cross-CKA buffer");
  std::vector<RepresentationGrams> grams(count);
  for (RepresentationGrams& g : grams) {
    g.model = r.get<std::int32_t>();
    g.index = r.get<std::int32_t>();
    for (auto& gram : g.grams) gram = r.get_array<double>();
  }
  if (!r.done()) throw InternalError("malformed cross-CKA buffer");
  return grams;
}

}  // namespace vindex
