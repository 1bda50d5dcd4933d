// Per-family routing (see vindex/phase3/routing.hpp and docs/phase3.md).
#include "vindex/phase3/routing.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex {
namespace {

// Indices of the `k` largest of `score`, largest first; ties to the lower index.
void top_k(std::span<const double> score, int k, std::vector<int>& order) {
  order.resize(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    const double sa = score[static_cast<std::size_t>(a)], sb = score[static_cast<std::size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  });
  order.resize(static_cast<std::size_t>(k));
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

int routing_int(const nlohmann::json& routing, const char* key, int fallback, const std::string& file) {
  if (!routing.contains(key) || routing[key].is_null()) return fallback;
  if (!routing[key].is_number_integer() || routing[key].get<long long>() < 1 || routing[key].get<long long>() > 1'000'000)
    throw InputError(file, "", fmt::format("'{}' is not a positive integer", key));
  return routing[key].get<int>();
}

}  // namespace

RoutingRule routing_rule(const ModelLayout& layout, const std::string& file) {
  RoutingRule r;
  r.experts = layout.n_routed_experts;
  r.k = layout.experts_per_token;
  if (r.k < 1 || r.k > r.experts)
    throw InputError(file, "", fmt::format("num_experts_per_tok {} is not between 1 and the {} experts", r.k, r.experts));
  const nlohmann::json& routing = layout.routing;
  const auto flag = [&](const char* key, bool fallback) {
    return routing.contains(key) && routing[key].is_boolean() ? routing[key].get<bool>() : fallback;
  };
  const FamilyTraits& family = traits(layout.family);
  r.kind = family.routing;
  r.router_bias_in_logits = family.router_bias_in_logits;
  switch (family.renormalize) {
    case Renormalize::never: break;
    case Renormalize::always: r.normalize = true; break;
    case Renormalize::as_config_says: r.normalize = flag("norm_topk_prob", false); break;
    case Renormalize::config_required: break;  // checked and read with the grouped rule's parameters below
  }
  if (r.kind == RoutingKind::none)
    throw InputError(file, "", fmt::format("family {} has no routing to recompute", family_name(layout.family)));
  if (r.kind == RoutingKind::grouped_sigmoid) {
    if (routing.contains("scoring_func") && routing["scoring_func"] != "sigmoid")
      throw InputError(file, "", fmt::format("scoring_func {} is not the sigmoid phase 3 recomputes",
                                             routing["scoring_func"].dump()));
    // transformers' own DeepseekV2Config has no scoring_func (softmax is implied) but topk_method "greedy".
    if (routing.contains("topk_method") && routing["topk_method"] != "noaux_tc")
      throw InputError(file, "", fmt::format("topk_method {} is not the noaux_tc phase 3 recomputes",
                                             routing["topk_method"].dump()));
    // No defaults: engines and configs disagree on them, and a guess would route differently.
    for (const char* key : {"n_group", "topk_group", "norm_topk_prob", "routed_scaling_factor"})
      if (!routing.contains(key) || routing[key].is_null())
        throw InputError(file, "", fmt::format("has no '{}', which phase 3 needs to route as DeepSeek-V3 does", key));
    if (!routing["norm_topk_prob"].is_boolean() || !routing["routed_scaling_factor"].is_number() ||
        !(routing["routed_scaling_factor"].get<double>() > 0))
      throw InputError(file, "", "norm_topk_prob is not a boolean or routed_scaling_factor not a positive number");
    r.n_group = routing_int(routing, "n_group", 1, file);
    r.topk_group = routing_int(routing, "topk_group", r.n_group, file);
    if (r.experts % r.n_group != 0 || r.topk_group > r.n_group || r.k > r.topk_group * (r.experts / r.n_group))
      throw InputError(file, "", fmt::format("n_group {} and topk_group {} do not fit {} experts and top-{}", r.n_group,
                                             r.topk_group, r.experts, r.k));
    r.normalize = routing["norm_topk_prob"].get<bool>();
    r.scaling = routing["routed_scaling_factor"].get<double>();
  }
  return r;
}

void route_tokens(const RoutingRule& rule, std::span<const double> logits, std::size_t n,
                  std::span<const double> selection_bias, std::vector<std::int32_t>& experts,
                  std::vector<double>& weights) {
  const auto E = static_cast<std::size_t>(rule.experts);
  VINDEX_ASSERT(logits.size() == n * E);
  std::vector<double> score(E), choice(E), masked(E), group_score, w;  // reused for every token
  std::vector<int> order, groups;
  for (std::size_t t = 0; t < n; ++t) {
    const std::span<const double> row = logits.subspan(t * E, E);
    switch (rule.kind) {
      case RoutingRule::Kind::grouped_sigmoid: {
        for (std::size_t e = 0; e < E; ++e) {
          score[e] = sigmoid(row[e]);
          choice[e] = score[e] + (selection_bias.empty() ? 0.0 : selection_bias[e]);
        }
        // Group score: the sum of the group's two largest choice scores; keep the best groups.
        const std::size_t per_group = E / static_cast<std::size_t>(rule.n_group);
        group_score.assign(static_cast<std::size_t>(rule.n_group), 0.0);
        for (std::size_t g = 0; g < group_score.size(); ++g) {
          top_k(std::span<const double>(choice).subspan(g * per_group, per_group), std::min<int>(2, static_cast<int>(per_group)), order);
          for (int i : order) group_score[g] += choice[g * per_group + static_cast<std::size_t>(i)];
        }
        top_k(group_score, rule.topk_group, groups);
        masked.assign(E, -std::numeric_limits<double>::infinity());
        for (int g : groups)
          for (std::size_t i = 0; i < per_group; ++i) masked[static_cast<std::size_t>(g) * per_group + i] = choice[static_cast<std::size_t>(g) * per_group + i];
        top_k(masked, rule.k, order);
        break;
      }
      case RoutingRule::Kind::softmax_topk: {
        const double m = *std::max_element(row.begin(), row.end());
        double sum = 0;
        for (std::size_t e = 0; e < E; ++e) sum += score[e] = std::exp(row[e] - m);
        for (std::size_t e = 0; e < E; ++e) score[e] /= sum;
        top_k(score, rule.k, order);
        break;
      }
      case RoutingRule::Kind::topk_softmax:
      case RoutingRule::Kind::topk_sigmoid:
        std::copy(row.begin(), row.end(), score.begin());
        top_k(score, rule.k, order);
        break;
      case RoutingRule::Kind::none:  // routing_rule never makes one
        VINDEX_ASSERT(false);
    }
    // Weights of the chosen experts.
    double total = 0;
    w.assign(order.size(), 0.0);
    if (rule.kind == RoutingRule::Kind::topk_softmax) {
      const double m = row[static_cast<std::size_t>(order.front())];
      for (std::size_t i = 0; i < order.size(); ++i) total += w[i] = std::exp(row[static_cast<std::size_t>(order[i])] - m);
      for (double& v : w) v /= total;
    } else if (rule.kind == RoutingRule::Kind::topk_sigmoid) {
      for (std::size_t i = 0; i < order.size(); ++i) w[i] = sigmoid(row[static_cast<std::size_t>(order[i])]);
    } else {
      for (std::size_t i = 0; i < order.size(); ++i) total += w[i] = score[static_cast<std::size_t>(order[i])];
      if (rule.normalize)
        for (double& v : w) v /= total + (rule.kind == RoutingRule::Kind::grouped_sigmoid ? 1e-20 : 0.0);
      for (double& v : w) v *= rule.scaling;
    }
    for (std::size_t i = 0; i < order.size(); ++i) {
      experts.push_back(order[i]);
      weights.push_back(w[i]);
    }
  }
}

}  // namespace vindex
