// Token routing recomputed as each family routes (docs/phase3.md, "Routing"): from a layer's
// router logits to each token's k chosen experts and their weights. Backend-free: the logits
// (x W_r^T in float64, plus GPT-OSS's router bias) are computed by the caller.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vindex/model/layout.hpp"

namespace vindex {

struct RoutingRule {
  using Kind = RoutingKind;  // the family's (vindex/model/family.hpp)
  Kind kind = Kind::softmax_topk;
  int experts = 0;
  int k = 0;
  int n_group = 1;
  int topk_group = 1;
  bool normalize = false;  // divide the chosen weights by their sum
  double scaling = 1.0;    // routed_scaling_factor
  bool router_bias_in_logits = false;  // GPT-OSS: the router's bias is part of the logits
};

// The rule of the model's family (its traits), from moe_config's routing parameters; an InputError naming
// config.json when a parameter the family needs is missing or inconsistent.
RoutingRule routing_rule(const ModelLayout& layout, const std::string& config_file);

// Chooses experts for `n` tokens from logits [n, E] (row-major). `selection_bias` [E] is
// DeepSeek's e_score_correction_bias (empty elsewhere). Appends k experts and k weights per token,
// in decreasing order of the selection score; ties go to the lower expert index.
void route_tokens(const RoutingRule& rule, std::span<const double> logits, std::size_t n,
                  std::span<const double> selection_bias, std::vector<std::int32_t>& experts,
                  std::vector<double>& weights);

}  // namespace vindex
