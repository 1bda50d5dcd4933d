// One layer's phase-3 statistics on the CPU (see phase3_layer.hpp).
#include "phase3_layer.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "blas_lapack.hpp"
#include "row_gram.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/model/dequantize.hpp"
#include "vindex/run/rank_computation.hpp"

namespace vindex::cpu {
namespace {

constexpr std::uint64_t kTokenBatch = 1024;

// A weight in the model's orientation, [out, in] row-major, in float64.
std::vector<double> decode_weight(const Checkpoint& ckpt, const ModelLayout& layout, const WeightRef& w) {
  const EncodedMatrix m = encode_weight(ckpt, w, layout.quantization);
  std::vector<double> stored(m.rows * m.cols);
  MatrixDecoder(m).decode(0, m.rows, 0, m.cols, stored.data(), m.cols);
  if (!w.slice.transposed) return stored;
  std::vector<double> out(stored.size());
  for (std::uint64_t r = 0; r < m.rows; ++r)
    for (std::uint64_t c = 0; c < m.cols; ++c) out[c * m.rows + r] = stored[r * m.cols + c];
  return out;
}

// c [m, n] = a [m, k] b^T, b [n, k]; all row-major float64.
void multiply_transposed(const double* a, const double* b, double* c, std::uint64_t m, std::uint64_t n, std::uint64_t k) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0,
              a, static_cast<int>(k), b, static_cast<int>(k), 0.0, c, static_cast<int>(n));
}

// SwiGLU (silu(gate) * up): the activation C1 and C3 measure; GPT-OSS's clamped variant with
// biases and BERT's GELU MLP are left out, and so is a gated MLP whose config.json names another
// activation (Gemma's gelu_pytorch_tanh, BitNet's relu2).
bool plain_swiglu(const ModelLayout& layout, const ProjectionSet& mlp) {
  const std::string& act = layout.hidden_act;
  return traits(layout.family).activation == Activation::swiglu && (act.empty() || act == "silu" || act == "swish") &&
         mlp[Projection::gate].present() && mlp[Projection::up].present();
}

// Tallies C1 and C3 for rows `rows` of `x` ([s, h]) through one MLP's gate and up projections.
void tally_activations(const Checkpoint& ckpt, const ModelLayout& layout, const ProjectionSet& mlp,
                       const std::vector<double>& x, std::uint64_t h, const std::vector<std::uint64_t>& rows,
                       ActivationTally& tally) {
  const std::vector<double> gate = decode_weight(ckpt, layout, mlp[Projection::gate]);
  const std::vector<double> up = decode_weight(ckpt, layout, mlp[Projection::up]);
  const std::uint64_t inter = mlp[Projection::gate].rows;
  std::vector<double> xe(rows.size() * h), g(rows.size() * inter), u(rows.size() * inter);
  for (std::size_t i = 0; i < rows.size(); ++i) std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(rows[i] * h), h, xe.begin() + static_cast<std::ptrdiff_t>(i * h));
  multiply_transposed(xe.data(), gate.data(), g.data(), rows.size(), inter, h);
  multiply_transposed(xe.data(), up.data(), u.data(), rows.size(), inter, h);
  for (std::size_t i = 0; i < rows.size(); ++i)
    tally.add(std::span<const double>(g).subspan(i * inter, inter), std::span<const double>(u).subspan(i * inter, inter));
}

}  // namespace

LayerPhase3 compute_layer_phase3(const Phase3Inputs& in, int index) {
  use_one_blas_thread();  // ranks are the parallelism, as in the CPU backend
  const LayerLayout& layer = in.layout.layers.at(static_cast<std::size_t>(index));
  const std::uint64_t n = in.capture.info().n_tokens;
  const std::uint64_t h = in.layout.hidden_size;
  const bool moe = layer.kind == LayerKind::moe;
  LayerPhase3 out;
  out.layer = index;
  out.kind = layer.kind;

  std::vector<double> router, selection_bias, logit_bias;
  std::optional<RoutingTally> routing;
  std::vector<std::int32_t> engine;
  if (moe) {
    if (!in.rule) throw InternalError("an MoE layer without a routing rule");
    if (!layer.router.present())
      throw InputError(in.checkpoint.listing_path().string(), fmt::format("router of layer {}", index),
                       "is missing: phase 3 recomputes the routing from it");
    router = decode_weight(in.checkpoint, in.layout, layer.router);
    if (layer.router_bias) {
      std::vector<double> bias = decode_vector(in.checkpoint.view(*layer.router_bias));
      (in.rule->router_bias_in_logits ? logit_bias : selection_bias) = std::move(bias);
    }
    routing.emplace(in.rule->experts, in.rule->k);
  }
  const auto E = static_cast<std::uint64_t>(in.rule ? in.rule->experts : 0);
  const auto k = static_cast<std::uint64_t>(in.rule ? in.rule->k : 0);

  // Stream the tokens: routing of all, and the sampled rows kept with their chosen experts.
  std::vector<double> sampled_x(in.sampled.size() * h);
  std::vector<std::int32_t> sampled_experts;
  std::size_t next_sample = 0;
  std::vector<double> xd, logits;
  std::vector<std::int32_t> experts;
  std::vector<double> weights;
  for (std::uint64_t r0 = 0; r0 < n; r0 += kTokenBatch) {
    const std::uint64_t r1 = std::min(n, r0 + kTokenBatch), m = r1 - r0;
    const std::vector<float> x = in.capture.mlp_input(index, r0, r1);
    xd.assign(x.begin(), x.end());
    if (moe) {
      engine = in.capture.selected_experts(index, r0, r1);
      const std::uint64_t engine_k = engine.size() / m;
      logits.resize(m * E);
      multiply_transposed(xd.data(), router.data(), logits.data(), m, E, h);
      if (!logit_bias.empty())
        for (std::uint64_t t = 0; t < m; ++t)
          for (std::uint64_t e = 0; e < E; ++e) logits[t * E + e] += logit_bias[e];
      experts.clear();
      weights.clear();
      route_tokens(*in.rule, logits, m, selection_bias, experts, weights);
      routing->add(experts, weights);
      for (std::uint64_t t = 0; t < m && engine_k; ++t)
        for (std::uint64_t j = 0; j < engine_k; ++j) {
          const std::int32_t chosen = engine[t * engine_k + j];
          ++out.engine_choices;
          const auto begin = experts.begin() + static_cast<std::ptrdiff_t>(t * k);
          if (std::find(begin, begin + static_cast<std::ptrdiff_t>(k), chosen) != begin + static_cast<std::ptrdiff_t>(k))
            ++out.engine_choices_matched;
        }
    }
    for (; next_sample < in.sampled.size() && in.sampled[next_sample] < r1; ++next_sample) {
      const std::uint64_t t = in.sampled[next_sample] - r0;
      std::copy_n(xd.begin() + static_cast<std::ptrdiff_t>(t * h), h, sampled_x.begin() + static_cast<std::ptrdiff_t>(next_sample * h));
      if (moe) sampled_experts.insert(sampled_experts.end(), experts.begin() + static_cast<std::ptrdiff_t>(t * k),
                                      experts.begin() + static_cast<std::ptrdiff_t>((t + 1) * k));
    }
  }
  if (routing) routing->finish(out);

  // C1 and C3: the chosen experts (or the dense MLP) of the sampled tokens.
  ActivationTally activations;
  bool measured = false;
  if (moe && !layer.routed.empty() && plain_swiglu(in.layout, layer.routed.front())) {
    // The layout requires only every expert's down_proj: one without gate or up would be a null weight.
    for (std::size_t e = 0; e < layer.routed.size(); ++e)
      if (!plain_swiglu(in.layout, layer.routed[e]))
        throw InputError(in.checkpoint.listing_path().string(), fmt::format("routed expert {} of layer {}", e, index),
                         "has no gate_proj or up_proj (expert 0 has both): phase 3 forms every chosen expert's SwiGLU");
    std::map<std::int32_t, std::vector<std::uint64_t>> rows_of;
    for (std::size_t i = 0; i < sampled_experts.size(); ++i) rows_of[sampled_experts[i]].push_back(i / k);
    for (const auto& [expert, rows] : rows_of)
      tally_activations(in.checkpoint, in.layout, layer.routed.at(static_cast<std::size_t>(expert)), sampled_x, h, rows,
                        activations);
    measured = true;
  } else if (!moe && plain_swiglu(in.layout, layer.dense)) {
    std::vector<std::uint64_t> rows(in.sampled.size());
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    tally_activations(in.checkpoint, in.layout, layer.dense, sampled_x, h, rows, activations);
    measured = true;
  }
  if (measured) activations.finish(out);

  // C5: the centred token Gram matrix of the sampled inputs.
  const std::uint64_t s = in.sampled.size();
  center_columns(sampled_x, s, h);
  out.token_gram = row_gram(sampled_x, s, h);
  normalize_gram(out.token_gram);
  return out;
}

}  // namespace vindex::cpu
