// Phase 3's statistics and their encoding between ranks (see vindex/phase3/statistics.hpp, docs/phase3.md).
#include "vindex/phase3/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../base/byte_codec.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/numerics/stats.hpp"

namespace vindex {

std::vector<std::uint64_t> sample_tokens(std::uint64_t n, std::uint64_t s) {
  std::vector<std::uint64_t> out;
  if (n <= s) {
    out.resize(n);
    std::iota(out.begin(), out.end(), std::uint64_t{0});
    return out;
  }
  for (std::uint64_t i = 0; i < s; ++i) out.push_back(i * n / s);
  return out;
}

RoutingTally::RoutingTally(int experts, int k)
    : experts_(experts), k_(k), loads_(static_cast<std::size_t>(experts), 0),
      coactivation_(static_cast<std::size_t>(experts) * static_cast<std::size_t>(experts), 0) {}

void RoutingTally::add(std::span<const std::int32_t> experts, std::span<const double> weights) {
  const auto k = static_cast<std::size_t>(k_);
  const auto E = static_cast<std::size_t>(experts_);
  VINDEX_ASSERT(experts.size() == weights.size() && experts.size() % k == 0);
  for (std::size_t t = 0; t < experts.size() / k; ++t) {
    double largest = 0, sum = 0;
    for (std::size_t i = 0; i < k; ++i) {
      const auto a = static_cast<std::size_t>(experts[t * k + i]);
      ++loads_[a];
      for (std::size_t j = 0; j < k; ++j) ++coactivation_[a * E + static_cast<std::size_t>(experts[t * k + j])];
      largest = std::max(largest, weights[t * k + i]);
      sum += weights[t * k + i];
    }
    concentration_sum_ += sum > 0 ? largest / sum : 0.0;
    ++tokens_;
  }
}

void RoutingTally::finish(LayerPhase3& out) const {
  out.experts = experts_;
  out.k = k_;
  out.load_counts = loads_;
  out.coactivation = coactivation_;  // the diagonal counted each token once per chosen expert: the load
  const double total = static_cast<double>(tokens_) * k_;
  const double mean = total / experts_;
  double entropy = 0, var = 0;
  std::int64_t max = 0;
  out.never_chosen = 0;
  for (std::int64_t c : loads_) {
    if (c == 0) ++out.never_chosen;
    if (c > 0) entropy -= (static_cast<double>(c) / total) * std::log(static_cast<double>(c) / total);
    var += (static_cast<double>(c) - mean) * (static_cast<double>(c) - mean);
    max = std::max(max, c);
  }
  out.load_entropy = experts_ > 1 ? entropy / std::log(static_cast<double>(experts_)) : LayerPhase3::nan;
  out.load_cv = mean > 0 ? std::sqrt(var / experts_) / mean : LayerPhase3::nan;
  out.max_over_mean_load = mean > 0 ? static_cast<double>(max) / mean : LayerPhase3::nan;
  out.topk_weight_concentration = tokens_ ? concentration_sum_ / static_cast<double>(tokens_) : LayerPhase3::nan;
}

void ActivationTally::add(std::span<const double> gate, std::span<const double> up) {
  VINDEX_ASSERT(gate.size() == up.size());
  double hmax = 0, gg = 0, uu = 0, gu = 0;
  std::vector<double> h(gate.size());
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    h[i] = g / (1.0 + std::exp(-g)) * up[i];  // silu(g) * u
    hmax = std::max(hmax, std::abs(h[i]));
    gg += g * g;
    uu += up[i] * up[i];
    gu += g * up[i];
  }
  std::size_t inactive = 0;
  for (double v : h)
    if (std::abs(v) < kActivationThreshold * hmax) ++inactive;
  sparsity_sum_ += hmax > 0 ? static_cast<double>(inactive) / static_cast<double>(h.size()) : 1.0;
  coherence_sum_ += gg > 0 && uu > 0 ? std::abs(gu) / std::sqrt(gg * uu) : 0.0;
  ++vectors_;
}

void ActivationTally::finish(LayerPhase3& out) const {
  out.activation_vectors = vectors_;
  out.activation_sparsity = vectors_ ? sparsity_sum_ / static_cast<double>(vectors_) : LayerPhase3::nan;
  out.gate_coherence = vectors_ ? coherence_sum_ / static_cast<double>(vectors_) : LayerPhase3::nan;
}

void center_columns(std::vector<double>& x, std::size_t s, std::size_t h) {
  VINDEX_ASSERT(x.size() == s * h);
  if (s == 0) return;
  std::vector<double> mean(h, 0.0);
  for (std::size_t t = 0; t < s; ++t)
    for (std::size_t j = 0; j < h; ++j) mean[j] += x[t * h + j];
  for (double& m : mean) m /= static_cast<double>(s);
  for (std::size_t t = 0; t < s; ++t)
    for (std::size_t j = 0; j < h; ++j) x[t * h + j] -= mean[j];
}

void normalize_gram(std::vector<double>& gram) {
  double sq = 0;
  for (double v : gram) sq += v * v;
  if (sq == 0) return;
  const double norm = std::sqrt(sq);
  for (double& v : gram) v /= norm;
}

void u_center_gram(std::vector<double>& gram, std::size_t n) {
  VINDEX_ASSERT(gram.size() == n * n && n >= 4);
  for (std::size_t i = 0; i < n; ++i) gram[i * n + i] = 0;
  // K~ - 1 1^T K~ / (n-2) - K~ 1 1^T / (n-2) + 1^T K~ 1 / ((n-1)(n-2)) 1 1^T, diagonal zero.
  std::vector<double> means(n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) means[j] += gram[i * n + j];
  double total = 0;
  for (double& m : means) {
    m /= static_cast<double>(n - 2);
    total += m;
  }
  const double shift = total / (2.0 * static_cast<double>(n - 1));
  for (double& m : means) m -= shift;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) gram[i * n + j] = i == j ? 0.0 : gram[i * n + j] - means[i] - means[j];
}

double gram_alignment(std::span<const double> a, std::span<const double> b, bool same) {
  if (a.size() != b.size()) throw InternalError("Gram matrices of different sizes");
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  // A representation whose centred values are all zero: like itself only.
  return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : same ? 1.0 : 0.0;
}

std::vector<double> cka_matrix(std::span<const LayerPhase3> layers) {
  const std::size_t n = layers.size();
  std::vector<double> cka(n * n, LayerPhase3::nan);
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = a; b < n; ++b)
      cka[a * n + b] = cka[b * n + a] = gram_alignment(layers[a].token_gram, layers[b].token_gram, a == b);
  return cka;
}

std::vector<Stage> cka_stages(std::span<const double> cka, std::span<const int> layers, int num_layers, double threshold) {
  const std::size_t n = layers.size();
  std::vector<Stage> stages;
  std::size_t start = 0;
  while (start < n) {
    std::size_t end = start + 1;
    while (end < n && layers[end] == layers[end - 1] + 1 && cka[start * n + end] >= threshold) ++end;
    Stage s;
    s.first_layer = layers[start];
    s.last_layer = layers[end - 1];
    s.start_fraction = static_cast<double>(s.first_layer) / num_layers;
    s.end_fraction = static_cast<double>(s.last_layer + 1) / num_layers;
    stages.push_back(s);
    start = end;
  }
  return stages;
}

double top8_concentration(std::span<const float> top_probs, std::uint64_t n, std::uint64_t p) {
  VINDEX_ASSERT(p >= 8 && top_probs.size() == n * p);
  if (n == 0) return LayerPhase3::nan;
  double total = 0;
  for (std::uint64_t t = 0; t < n; ++t) {
    double mass = 0;
    for (std::uint64_t i = 0; i < 8; ++i) mass += top_probs[t * p + i];
    total += mass;
  }
  return total / static_cast<double>(n);
}

double median_over_layers(std::span<const LayerPhase3> layers, double LayerPhase3::*value) {
  std::vector<double> values;
  for (const LayerPhase3& l : layers) values.push_back(l.*value);
  return summarize(values).median;
}

void encode_phase3_layers(std::span<const LayerPhase3> layers, std::vector<std::byte>& out) {
  ByteWriter w(out);
  w.put<std::uint64_t>(layers.size());
  for (const LayerPhase3& l : layers) {
    w.put<std::int32_t>(l.layer);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(l.kind));
    w.put<std::int32_t>(l.experts);
    w.put<std::int32_t>(l.k);
    w.put_array<std::int64_t>(l.load_counts);
    w.put_array<std::int64_t>(l.coactivation);
    for (double v : {l.load_entropy, l.load_cv, l.max_over_mean_load, l.topk_weight_concentration, l.activation_sparsity,
                     l.gate_coherence})
      w.put<double>(v);
    for (std::int64_t v : {l.never_chosen, l.engine_choices, l.engine_choices_matched, l.activation_vectors})
      w.put<std::int64_t>(v);
    w.put_array<double>(l.token_gram);
  }
}

std::vector<LayerPhase3> decode_phase3_layers(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  const auto count = r.get<std::uint64_t>();
  if (count > bytes.size()) throw InternalError("malformed phase-3 buffer");
  std::vector<LayerPhase3> layers(count);
  for (LayerPhase3& l : layers) {
    l.layer = r.get<std::int32_t>();
    const auto kind = r.get<std::uint8_t>();
    if (kind > static_cast<std::uint8_t>(LayerKind::moe)) throw InternalError("malformed phase-3 buffer");
    l.kind = static_cast<LayerKind>(kind);
    l.experts = r.get<std::int32_t>();
    l.k = r.get<std::int32_t>();
    l.load_counts = r.get_array<std::int64_t>();
    l.coactivation = r.get_array<std::int64_t>();
    for (double* v : {&l.load_entropy, &l.load_cv, &l.max_over_mean_load, &l.topk_weight_concentration,
                      &l.activation_sparsity, &l.gate_coherence})
      *v = r.get<double>();
    for (std::int64_t* v : {&l.never_chosen, &l.engine_choices, &l.engine_choices_matched, &l.activation_vectors})
      *v = r.get<std::int64_t>();
    l.token_gram = r.get_array<double>();
  }
  if (!r.done()) throw InternalError("trailing bytes in a phase-3 buffer");
  return layers;
}

}  // namespace vindex
