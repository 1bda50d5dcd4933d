// Phase 3's statistics (docs/phase3.md): per MoE layer the expert loads and co-activation from
// the recomputed routing, per layer the SwiGLU activation sparsity (C1) and gate coherence (C3)
// on sampled tokens, the layer-to-layer linear CKA and its stages (C5), and the top-8 output
// concentration (C2). Backend-free: the products x W^T are computed by the caller.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "vindex/model/layout.hpp"
#include "vindex/phase3/capture_file.hpp"

namespace vindex {

inline constexpr double kActivationThreshold = 0.01;  // |h_i| < this * max |h| counts as inactive (C1)
inline constexpr double kStageThreshold = 0.9;        // CKA to a stage's first layer (C5)
inline constexpr int kDefaultSampledTokens = 512;

// One layer's phase-3 results, computed on the rank that owns the layer.
struct LayerPhase3 {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  int layer = 0;
  LayerKind kind = LayerKind::dense;
  // Routing (MoE layers; experts == 0 elsewhere).
  int experts = 0, k = 0;
  std::vector<std::int64_t> load_counts;   // [E]
  std::vector<std::int64_t> coactivation;  // [E, E]; the diagonal holds the loads
  double load_entropy = nan, load_cv = nan, max_over_mean_load = nan, topk_weight_concentration = nan;
  std::int64_t never_chosen = 0;
  std::int64_t engine_choices = 0, engine_choices_matched = 0;  // the capture's selected_experts, when present
  // Activations of the sampled tokens' chosen experts (C1, C3); NaN where the MLP is not SwiGLU.
  std::int64_t activation_vectors = 0;
  double activation_sparsity = nan, gate_coherence = nan;
  // The centred token Gram matrix of the sampled MLP inputs, scaled to unit Frobenius norm (CKA).
  std::vector<double> token_gram;
};

// Tokens used for C1, C3 and C5: all when n <= s, else floor(i n / s) for i < s.
std::vector<std::uint64_t> sample_tokens(std::uint64_t n, std::uint64_t s);

// Routing statistics of one layer, token batch by token batch.
class RoutingTally {
 public:
  RoutingTally(int experts, int k);
  void add(std::span<const std::int32_t> experts, std::span<const double> weights);  // k per token
  void finish(LayerPhase3& out) const;

 private:
  int experts_, k_;
  std::vector<std::int64_t> loads_, coactivation_;
  double concentration_sum_ = 0;
  std::int64_t tokens_ = 0;
};

// C1 and C3 of one layer from (gate, up) pre-activation vectors.
class ActivationTally {
 public:
  void add(std::span<const double> gate, std::span<const double> up);
  void finish(LayerPhase3& out) const;

 private:
  double sparsity_sum_ = 0, coherence_sum_ = 0;
  std::int64_t vectors_ = 0;
};

// Centres the columns of `x` ([s, h] row-major, modified) -- the caller forms K = x x^T -- and
// scales a Gram matrix to unit Frobenius norm (all zero stays zero).
void center_columns(std::vector<double>& x, std::size_t s, std::size_t h);
void normalize_gram(std::vector<double>& gram);
// The U-centring of an [n, n] Gram matrix (n >= 4), in place: the unbiased estimator of HSIC
// (Song et al. 2012) is <U(K), U(L)> / (n (n - 3)), and the debiased CKA the cosine of U(K) and U(L)
// (Nguyen, Raghu and Kornblith 2021; Kornblith et al.'s center_gram(unbiased=True)).
void u_center_gram(std::vector<double>& gram, std::size_t n);
// <a, b> / (|a| |b|) of two Gram matrices of one size: the linear CKA of centred (or U-centred)
// Grams; `same` (0 when either is all zero unless both are the same matrix, then 1).
double gram_alignment(std::span<const double> a, std::span<const double> b, bool same = false);

struct Stage {
  int first_layer = 0, last_layer = 0;
  double start_fraction = 0, end_fraction = 0;  // first_layer / L and (last_layer + 1) / L
};

struct Phase3Results {
  CaptureInfo capture;
  std::uint64_t sampled_tokens = 0;
  std::vector<LayerPhase3> layers;  // by layer
  std::vector<int> cka_layers;
  std::vector<double> cka;          // [n, n] over cka_layers
  std::vector<Stage> stages;
  double top8_concentration = LayerPhase3::nan;  // C2
};

// Linear CKA of every pair of layers from their normalised token Grams.
std::vector<double> cka_matrix(std::span<const LayerPhase3> layers);
// Greedy stages over consecutive layers: a stage extends while CKA to its first layer >= threshold.
std::vector<Stage> cka_stages(std::span<const double> cka, std::span<const int> layers, int num_layers,
                              double threshold = kStageThreshold);
// C2: the mean over tokens of the sum of the 8 largest probabilities ([n, p] row-major, descending).
double top8_concentration(std::span<const float> top_probs, std::uint64_t n, std::uint64_t p);

// The median over layers of a per-layer value, skipping NaN; NaN when none.
double median_over_layers(std::span<const LayerPhase3> layers, double LayerPhase3::*value);

void encode_phase3_layers(std::span<const LayerPhase3> layers, std::vector<std::byte>& out);
std::vector<LayerPhase3> decode_phase3_layers(std::span<const std::byte> bytes);

}  // namespace vindex
