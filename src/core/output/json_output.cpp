// phase1_moe_svd.json, phase2_router_svd.json, phase1_moe_svd_agg.json (the constants) and the
// terminal summary table.
#include "vindex/output/json_output.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/numerics/random_floor.hpp"

namespace vindex {
namespace {

using ojson = nlohmann::ordered_json;

// JSON has no NaN: undefined statistics (sigma_1 = 0, ...) are written as null.
ojson number(double v) { return std::isfinite(v) ? ojson(v) : ojson(nullptr); }

ojson group_json(const MatrixGroup& g, const std::vector<int>& ks) {
  const GroupSummary s = summarize_group(g, ks.size());
  ojson j;
  j["n_matrices"] = s.n_matrices;
  j["shape"] = {g.rows, g.cols};
  for (std::size_t i = 0; i < ks.size(); ++i) {
    const Summary& v = s.var_at_k[i];
    const int k = ks[i];
    j[fmt::format("median_var{}", k)] = number(v.median);
    j[fmt::format("q25_var{}", k)] = number(v.q25);
    j[fmt::format("q75_var{}", k)] = number(v.q75);
    j[fmt::format("mean_var{}", k)] = number(v.mean);
    j[fmt::format("min_var{}", k)] = number(v.min);
    j[fmt::format("max_var{}", k)] = number(v.max);
    // What a Gaussian matrix of this shape gives, and how far the median lies above it (for a
    // group of one shape).
    if (g.rows > 0 && g.cols > 0) {
      const double floor = random_floor_var_at_k(g.rows, g.cols, k);
      j[fmt::format("random_floor_var{}", k)] = number(floor);
      j[fmt::format("excess_var{}", k)] = number(v.median - floor);
    }
  }
  for (std::size_t i = 0; i < kScalarStats.size(); ++i)
    j[fmt::format("median_{}", kScalarStats[i].name)] = number(s.scalars[i].median);
  j["n_fp64_gram"] = s.n_fp64_gram;
  j["n_fp32_eigen"] = s.n_fp32_eigen;
  return j;
}

// The seed's own layer-level fields (its phase1_moe_svd.json: median_var64, q25/q75, dominant
// singular-value ratios), from the layer's primary group: down_proj of its routed experts, or of its
// dense MLP. s0_s1_ratio is the median over the group's matrices of S0/S1; the median expert is
// the one whose var@64 is the group's median (the lower middle one of an even count, the lower
// expert id among equal values), with its three largest singular values.
void add_seed_fields(ojson& layer, const MatrixGroup& g, std::size_t k64, std::size_t k_count) {
  const GroupSummary s = summarize_group(g, k_count);
  const std::size_t n = g.size();
  layer["median_var64"] = number(s.var_at_k[k64].median);
  layer["q25_var64"] = number(s.var_at_k[k64].q25);
  layer["q75_var64"] = number(s.var_at_k[k64].q75);
  layer["s0_s1_ratio"] = number(s.scalar("sv_ratio").median);
  if (n == 0) return;
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return g.var_at_k[a * k_count + k64] < g.var_at_k[b * k_count + k64];
  });
  const std::size_t m = order[(n - 1) / 2];
  layer["median_expert"] = g.expert_ids[m];
  ojson top = ojson::array();
  for (std::size_t i = 0; i < std::min<std::size_t>(3, g.sv_count()); ++i)
    top.push_back(number(g.singular_values[m * g.sv_count() + i]));
  layer["median_expert_top3_sv"] = std::move(top);
}

ojson pending(const char* name, const char* needs) {
  return {{"name", name}, {"status", "pending"}, {"value", nullptr}, {"needs", needs}};
}

}  // namespace

ojson phase1_summary_json(const VindexTables& tables, const std::string& model, const ojson& provenance) {
  ojson j;
  j["model"] = model;
  j["k"] = tables.ks;
  ojson names = ojson::array();
  for (Projection p : tables.projections) names.push_back(projection_name(p));
  j["projections"] = names;
  // One entry per layer; in it one object per projection: the layer's own matrices (dense MLP or
  // routed experts) with their shared expert's beside them under "shared".
  ojson layers = ojson::array();
  const auto find = [&](int layer, MatrixRole role, Projection p) -> const MatrixGroup* {
    for (const MatrixGroup& g : tables.groups)
      if (g.layer == layer && g.role == role && g.projection == p) return &g;
    return nullptr;
  };
  for (const MatrixGroup& g : tables.groups) {
    if (g.role != MatrixRole::dense && g.role != MatrixRole::routed) continue;
    if (layers.empty() || layers.back()["layer"] != g.layer) {
      ojson layer;
      layer["layer"] = g.layer;
      layer["kind"] = layer_kind_name(g.kind);
      layers.push_back(std::move(layer));
    }
    ojson entry = group_json(g, tables.ks);
    const MatrixGroup* shared = find(g.layer, MatrixRole::shared, g.projection);
    entry["shared"] = shared ? group_json(*shared, tables.ks) : ojson(nullptr);
    layers.back()[projection_name(g.projection)] = std::move(entry);
  }
  // The seed's fields at the layer level, for down_proj and var@64 (when both were computed).
  const auto k64 = std::find(tables.ks.begin(), tables.ks.end(), 64);
  const bool has_down =
      std::find(tables.projections.begin(), tables.projections.end(), Projection::down) != tables.projections.end();
  if (k64 != tables.ks.end() && has_down) {
    j["seed_fields"] = {{"projection", "down_proj"},
                        {"k", 64},
                        {"of", "the routed experts in MoE layers, the dense MLP in dense layers"},
                        {"fields", {"median_var64", "q25_var64", "q75_var64", "s0_s1_ratio", "median_expert",
                                    "median_expert_top3_sv"}}};
    for (ojson& layer : layers) {
      const int index = layer["layer"].get<int>();
      const MatrixGroup* g = find(index, MatrixRole::routed, Projection::down);
      if (!g) g = find(index, MatrixRole::dense, Projection::down);
      if (g) add_seed_fields(layer, *g, static_cast<std::size_t>(k64 - tables.ks.begin()), tables.ks.size());
    }
  } else {
    j["seed_fields"] = nullptr;  // var@64 of down_proj was not computed
  }
  j["layers"] = std::move(layers);
  j["provenance"] = provenance;
  return j;
}

ojson phase2_router_json(const VindexTables& tables, const std::string& model, const ojson& provenance) {
  ojson j;
  j["model"] = model;
  j["k"] = tables.ks;
  ojson layers = ojson::array();
  std::vector<const MatrixGroup*> routers;
  for (const MatrixGroup& g : tables.groups) {
    if (g.role != MatrixRole::router) continue;
    routers.push_back(&g);
    VINDEX_ASSERT(g.size() == 1);
    ojson layer;
    layer["layer"] = g.layer;
    layer["shape"] = {g.rows, g.cols};
    for (std::size_t i = 0; i < tables.ks.size(); ++i) layer[fmt::format("var{}", tables.ks[i])] = number(g.var_at_k[i]);
    for (std::size_t i = 0; i < kScalarStats.size(); ++i) layer[kScalarStats[i].name] = number(g.scalars[i][0]);
    layer["singular_values"] = g.singular_values;
    const auto bias = std::find_if(tables.router_biases.begin(), tables.router_biases.end(),
                                   [&](const RouterBias& b) { return b.layer == g.layer; });
    if (bias != tables.router_biases.end()) {
      const BiasSummary s = summarize_bias(bias->values);
      layer["bias"] = {{"tensor", bias->tensor}, {"n", bias->values.size()}, {"mean", s.mean}, {"std", s.std},
                       {"min", s.min},          {"max", s.max},            {"l2_norm", s.l2_norm}};
    } else {
      layer["bias"] = nullptr;
    }
    layers.push_back(std::move(layer));
  }
  j["n_layers"] = routers.size();
  // Across layers: the order statistics of each router's statistics.
  if (!routers.empty()) {
    MatrixGroup all;
    const bool one_shape = std::all_of(routers.begin(), routers.end(), [&](const MatrixGroup* g) {
      return g->rows == routers.front()->rows && g->cols == routers.front()->cols;
    });
    if (one_shape) all.rows = routers.front()->rows, all.cols = routers.front()->cols;
    for (const MatrixGroup* g : routers) {
      all.expert_ids.push_back(g->layer);
      all.var_at_k.insert(all.var_at_k.end(), g->var_at_k.begin(), g->var_at_k.end());
      for (std::size_t i = 0; i < kScalarStats.size(); ++i) all.scalars[i].push_back(g->scalars[i][0]);
      all.gram_bits.push_back(g->gram_bits[0]);
      all.eigen_bits.push_back(g->eigen_bits[0]);
    }
    j["across_layers"] = group_json(all, tables.ks);
    j["across_layers"].erase("shape");
  } else {
    j["across_layers"] = nullptr;
  }
  j["layers"] = std::move(layers);
  j["provenance"] = provenance;
  return j;
}

namespace {

// Phase 3's definitions, as docs/phase3.md states them (written next to every value).
constexpr const char* kC1Definition =
    "median over layers of the mean, over the sampled tokens' chosen experts (the dense MLP in dense layers), of the "
    "fraction of entries of h = silu(x W_gate^T) * (x W_up^T) with |h_i| < 0.01 max|h|; SwiGLU MLPs only";
constexpr const char* kC2Definition =
    "mean over all captured tokens of the summed probability of the 8 most probable next tokens";
constexpr const char* kC3Definition =
    "this project's definition (the source publishes none): median over layers of the mean, over the same (token, "
    "expert) pairs as C1, of |cos(x W_gate^T, x W_up^T)|, the alignment of the gating signal with the value it gates";
constexpr const char* kC5Definition =
    "number of stages of consecutive layers, each extending while the linear CKA of the layers' MLP inputs (sampled "
    "tokens) to the stage's first layer is at least 0.9";

ojson measured(const char* name, const char* definition, double value) {
  ojson c;
  c["name"] = name;
  c["definition"] = definition;
  if (std::isfinite(value)) {
    c["status"] = "measured";
    c["value"] = value;
  } else {
    c["status"] = "pending";
    c["value"] = nullptr;
    c["needs"] = "layers whose MLP is a plain SwiGLU (phase 3 measured none in this run)";
  }
  return c;
}

}  // namespace

ojson phase3_routing_json(const VindexTables& tables, const std::string& model, const ojson& provenance) {
  VINDEX_ASSERT(tables.phase3.has_value());
  const Phase3Results& p = *tables.phase3;
  ojson j;
  j["model"] = model;
  j["capture"] = {{"file", p.capture.path},        {"model", p.capture.model},
                  {"engine", p.capture.engine},    {"n_tokens", p.capture.n_tokens},
                  {"n_prompts", p.capture.n_prompts}, {"sampled_tokens", p.sampled_tokens}};
  j["definitions"] = {
      {"load_entropy", "-sum p_e ln p_e / ln E over experts with load > 0, p_e = load_e / (tokens k)"},
      {"load_cv", "population standard deviation of the loads over their mean"},
      {"max_over_mean_load", "largest load over the mean load"},
      {"never_chosen", "experts no token chose"},
      {"topk_weight_concentration", "mean over tokens of the largest routing weight over the sum of the token's k weights"},
      {"selection_agreement", "share of the engine's (token, expert) choices the recomputed routing also makes"},
      {"activation_sparsity", "C1's per-layer value"},
      {"gate_coherence", "C3's per-layer value"},
      {"cka", "linear CKA of the layers' centred MLP inputs on the sampled tokens"}};
  ojson layers = ojson::array();
  for (const LayerPhase3& l : p.layers) {
    ojson e;
    e["layer"] = l.layer;
    e["kind"] = layer_kind_name(l.kind);
    if (l.experts > 0) {
      e["experts"] = l.experts;
      e["k"] = l.k;
      e["load_counts"] = l.load_counts;
      e["load_entropy"] = number(l.load_entropy);
      e["load_cv"] = number(l.load_cv);
      e["max_over_mean_load"] = number(l.max_over_mean_load);
      e["never_chosen"] = l.never_chosen;
      e["topk_weight_concentration"] = number(l.topk_weight_concentration);
      e["engine_choices"] = l.engine_choices;
      e["selection_agreement"] =
          l.engine_choices ? ojson(static_cast<double>(l.engine_choices_matched) / static_cast<double>(l.engine_choices))
                           : ojson(nullptr);
    }
    e["activation_vectors"] = l.activation_vectors;
    e["activation_sparsity"] = number(l.activation_sparsity);
    e["gate_coherence"] = number(l.gate_coherence);
    layers.push_back(std::move(e));
  }
  j["layers"] = std::move(layers);
  ojson matrix = ojson::array();
  const std::size_t n = p.cka_layers.size();
  for (std::size_t a = 0; a < n; ++a) {
    ojson row = ojson::array();
    for (std::size_t b = 0; b < n; ++b) row.push_back(number(p.cka[a * n + b]));
    matrix.push_back(std::move(row));
  }
  j["cka"] = {{"layers", p.cka_layers}, {"matrix", std::move(matrix)}};
  ojson stages = ojson::array();
  for (const Stage& s : p.stages)
    stages.push_back({{"first_layer", s.first_layer}, {"last_layer", s.last_layer}, {"start_fraction", s.start_fraction},
                      {"end_fraction", s.end_fraction}});
  j["stages"] = std::move(stages);
  j["stage_threshold"] = kStageThreshold;
  j["activation_threshold"] = kActivationThreshold;
  j["provenance"] = provenance;
  return j;
}

ojson phase1_constants_json(const VindexTables& tables, const std::string& model, const ojson& provenance) {
  ojson constants;
  if (tables.phase3) {
    const Phase3Results& p = *tables.phase3;
    constants["C1"] = measured("FFN activation sparsity", kC1Definition,
                               median_over_layers(p.layers, &LayerPhase3::activation_sparsity));
    constants["C2"] = measured("top-8 output concentration", kC2Definition, p.top8_concentration);
    constants["C3"] = measured("gate coherence", kC3Definition, median_over_layers(p.layers, &LayerPhase3::gate_coherence));
  } else {
    constants["C1"] = pending("FFN activation sparsity",
                              "activations of the experts on real tokens: hidden states captured by an inference engine (phase 3)");
    constants["C2"] = pending("top-8 output concentration",
                              "next-token probabilities from inference on a prompt set (phase 3)");
    constants["C3"] = pending("gate coherence",
                              "routing statistics from captured hidden states and a formula; the source publishes none (phase 3)");
  }
  const auto t = layer_temperature(tables);
  ojson c4;
  c4["name"] = "layer temperature (var@64)";
  c4["definition"] =
      "median over MoE layers of the per-layer median var@64 of the routed experts' down_proj, where var@64 is "
      "the sum of the 64 largest squared singular values over the squared Frobenius norm";
  if (t) {
    c4["status"] = "measured";
    c4["value"] = t->value;
    c4["range"] = {t->min, t->max};
    c4["n_layers"] = t->layers.size();
    c4["layers"] = t->layers;
    c4["random_floor"] = t->random_floor;
    c4["excess_over_random"] = t->value - t->random_floor;
  } else {
    c4["status"] = "pending";
    c4["value"] = nullptr;
    c4["needs"] = "phase 1 with down_proj in --projections, at least one MoE layer in --layers and 64 in --k";
  }
  constants["C4"] = c4;
  if (tables.phase3) {
    const Phase3Results& p = *tables.phase3;
    ojson c5 = measured("circuit stage count", kC5Definition, static_cast<double>(p.stages.size()));
    ojson boundaries = ojson::array();
    for (const Stage& s : p.stages) boundaries.push_back({s.start_fraction, s.end_fraction});
    c5["stage_boundaries"] = std::move(boundaries);
    c5["n_layers"] = p.cka_layers.size();
    constants["C5"] = std::move(c5);
  } else {
    constants["C5"] = pending("circuit stage count",
                              "layer-to-layer CKA of hidden states captured on a prompt set (phase 3)");
  }

  ojson j;
  j["model"] = model;
  j["constants"] = constants;
  j["dissolution_threshold"] = kDissolutionThreshold;
  j["spectral_class"] = t ? ojson(t->value < kDissolutionThreshold ? "dissolved" : "non-dissolved") : ojson(nullptr);
  j["provenance"] = provenance;
  return j;
}

std::string format_layer_table(const VindexTables& tables) {
  const std::size_t kc = tables.ks.size();
  std::string head = fmt::format("{:>5}  {:<6}  {:<16}  {:>4}  {:>12}", "layer", "kind", "matrices", "n", "shape");
  for (int k : tables.ks) head += fmt::format("  {:>8}  {:>17}", fmt::format("var@{}", k), "IQR");
  head += fmt::format("  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}", "sv0/sv1", "top_sv", "stab.rk", "eff.rk", "alpha");
  std::string out = head + "\n";
  for (const MatrixGroup& g : tables.groups) {
    const GroupSummary s = summarize_group(g, kc);
    std::string line = fmt::format("{:>5}  {:<6}  {:<16}  {:>4}  {:>12}", g.layer, layer_kind_name(g.kind), g.name,
                                   s.n_matrices, fmt::format("{}x{}", g.rows, g.cols));
    for (std::size_t j = 0; j < kc; ++j)
      line += fmt::format("  {:>8.4f}  [{:>7.4f}, {:>7.4f}]", s.var_at_k[j].median, s.var_at_k[j].q25, s.var_at_k[j].q75);
    line += fmt::format("  {:>8.3f}  {:>8.4g}  {:>8.2f}  {:>8.1f}  {:>6.2f}", s.scalar("sv_ratio").median,
                        s.scalar("top_sv").median, s.scalar("stable_rank").median, s.scalar("effective_rank").median,
                        s.scalar("alpha").median);
    out += line + "\n";
  }
  if (const auto t = layer_temperature(tables))
    out += fmt::format("C4 (median over {} MoE layers of median var@64) = {:.4f}, range [{:.4f}, {:.4f}]: {}\n",
                       t->layers.size(), t->value, t->min, t->max,
                       t->value < kDissolutionThreshold ? fmt::format("dissolved (< {})", kDissolutionThreshold)
                                                        : fmt::format("non-dissolved (>= {})", kDissolutionThreshold));
  return out;
}

}  // namespace vindex

namespace vindex {

std::string format_phase3_table(const Phase3Results& p) {
  std::string out = fmt::format("{:>5}  {:<6}  {:>9}  {:>8}  {:>8}  {:>6}  {:>9}  {:>9}  {:>9}\n", "layer", "kind",
                                "load ent.", "load CV", "max/mean", "never", "agreement", "C1 spars.", "C3 coh.");
  const auto cell = [](double v, int width) {
    return std::isfinite(v) ? fmt::format("{:>{}.4f}", v, width) : fmt::format("{:>{}}", "-", width);
  };
  for (const LayerPhase3& l : p.layers) {
    const double agreement = l.engine_choices ? static_cast<double>(l.engine_choices_matched) / static_cast<double>(l.engine_choices)
                                              : std::numeric_limits<double>::quiet_NaN();
    out += fmt::format("{:>5}  {:<6}  {}  {}  {}  {:>6}  {}  {}  {}\n", l.layer, layer_kind_name(l.kind), cell(l.load_entropy, 9),
                       cell(l.load_cv, 8), cell(l.max_over_mean_load, 8),
                       l.experts ? fmt::format("{}", l.never_chosen) : std::string("-"), cell(agreement, 9),
                       cell(l.activation_sparsity, 9), cell(l.gate_coherence, 9));
  }
  out += fmt::format("C1 {:.4f}, C2 {:.4f}, C3 {:.4f}, C5 {} stage(s) over {} layers (docs/phase3.md)\n",
                     median_over_layers(p.layers, &LayerPhase3::activation_sparsity), p.top8_concentration,
                     median_over_layers(p.layers, &LayerPhase3::gate_coherence), p.stages.size(), p.cka_layers.size());
  return out;
}

}  // namespace vindex
