// phase1_moe_svd.json, phase1_moe_svd_agg.json and the terminal summary table.
#include "vindex/json_output.hpp"

#include <cmath>

#include <fmt/format.h>

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
  }
  j["median_sv_ratio"] = number(s.sv_ratio.median);
  j["median_top_sv"] = number(s.top_sv.median);
  j["median_stable_rank"] = number(s.stable_rank.median);
  j["median_effective_rank"] = number(s.effective_rank.median);
  j["n_fp64_gram"] = s.n_fp64_gram;
  j["n_fp32_eigen"] = s.n_fp32_eigen;
  return j;
}

ojson pending(const char* name, const char* needs) {
  return {{"name", name}, {"status", "pending"}, {"value", nullptr}, {"needs", needs}};
}

}  // namespace

ojson phase1_summary_json(const Phase1Tables& tables, const std::string& model, const ojson& provenance) {
  ojson j;
  j["model"] = model;
  j["k"] = tables.ks;
  j["projection"] = "down_proj";
  ojson layers = ojson::array();
  for (std::size_t i = 0; i < tables.groups.size(); ++i) {
    const MatrixGroup& g = tables.groups[i];
    if (g.role == MatrixRole::shared) continue;
    ojson layer;
    layer["layer"] = g.layer;
    layer["kind"] = layer_kind_name(g.kind);
    layer.update(group_json(g, tables.ks));
    const bool has_shared = i + 1 < tables.groups.size() && tables.groups[i + 1].layer == g.layer &&
                            tables.groups[i + 1].role == MatrixRole::shared;
    layer["shared"] = has_shared ? group_json(tables.groups[i + 1], tables.ks) : ojson(nullptr);
    layers.push_back(std::move(layer));
  }
  j["layers"] = std::move(layers);
  j["provenance"] = provenance;
  return j;
}

ojson phase1_constants_json(const Phase1Tables& tables, const std::string& model, const ojson& provenance) {
  ojson constants;
  constants["C1"] = pending("FFN activation sparsity",
                            "activations of the experts on real tokens: hidden states captured by an inference engine (phase 3)");
  constants["C2"] = pending("top-8 output concentration",
                            "next-token probabilities from inference on a prompt set (phase 3)");
  constants["C3"] = pending("gate coherence",
                            "routing statistics from captured hidden states and a formula; the source publishes none (phase 3)");
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
  } else {
    c4["status"] = "pending";
    c4["value"] = nullptr;
    c4["needs"] = "at least one MoE layer in --layers and 64 in --k";
  }
  constants["C4"] = c4;
  constants["C5"] = pending("circuit stage count",
                            "layer-to-layer CKA of hidden states captured on a prompt set (phase 3)");

  ojson j;
  j["model"] = model;
  j["constants"] = constants;
  j["dissolution_threshold"] = kDissolutionThreshold;
  j["spectral_class"] = t ? ojson(t->value < kDissolutionThreshold ? "dissolved" : "non-dissolved") : ojson(nullptr);
  j["provenance"] = provenance;
  return j;
}

std::string format_layer_table(const Phase1Tables& tables) {
  const std::size_t kc = tables.ks.size();
  std::string head = fmt::format("{:>5}  {:<6}  {:>4}  {:>12}", "layer", "kind", "n", "shape");
  for (int k : tables.ks) head += fmt::format("  {:>8}  {:>17}", fmt::format("var@{}", k), "IQR");
  head += fmt::format("  {:>8}  {:>8}  {:>8}  {:>8}", "sv0/sv1", "top_sv", "stab.rk", "eff.rk");
  std::string out = head + "\n";
  for (const MatrixGroup& g : tables.groups) {
    const GroupSummary s = summarize_group(g, kc);
    const char* kind = g.role == MatrixRole::shared ? "shared" : layer_kind_name(g.kind);
    std::string line = fmt::format("{:>5}  {:<6}  {:>4}  {:>12}", g.layer, kind, s.n_matrices, fmt::format("{}x{}", g.rows, g.cols));
    for (std::size_t j = 0; j < kc; ++j)
      line += fmt::format("  {:>8.4f}  [{:>7.4f}, {:>7.4f}]", s.var_at_k[j].median, s.var_at_k[j].q25, s.var_at_k[j].q75);
    line += fmt::format("  {:>8.3f}  {:>8.4g}  {:>8.2f}  {:>8.1f}", s.sv_ratio.median, s.top_sv.median,
                        s.stable_rank.median, s.effective_rank.median);
    out += line + "\n";
  }
  if (const auto t = layer_temperature(tables))
    out += fmt::format("C4 (median over {} MoE layers of median var@64) = {:.4f}, range [{:.4f}, {:.4f}]: {}\n",
                       t->layers.size(), t->value, t->min, t->max,
                       t->value < kDissolutionThreshold ? "dissolved (< 0.15)" : "non-dissolved (>= 0.15)");
  return out;
}

}  // namespace vindex
