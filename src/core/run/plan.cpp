// Work list and the contiguous balanced split across ranks.
#include "vindex/run/plan.hpp"

#include <algorithm>
#include <numeric>
#include <string_view>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/natural_order.hpp"

namespace vindex {

std::string MatrixKey::group() const {
  if (role == MatrixRole::router) return "router";
  return role == MatrixRole::shared ? std::string("shared_") + projection_name(projection) : projection_name(projection);
}

std::vector<WorkItem> plan_items(const ModelLayout& layout, const Checkpoint& ckpt, std::span<const int> layers,
                                 const PlanRequest& request) {
  std::vector<WorkItem> items;
  const auto add = [&](const MatrixKey& key, const WeightRef& w) {
    items.push_back(WorkItem{key, w, w.stored_bytes(), estimate_matrix_seconds(w.rows, w.cols)});
  };
  const auto lacks = [&](int layer, const char* what, Projection p) {
    return UsageError(fmt::format("--projections: layer {}'s {} has no {} in this checkpoint (family {})", layer, what,
                                  projection_name(p), family_name(layout.family)));
  };
  for (int index : layers) {
    const LayerLayout& layer = layout.layers.at(static_cast<std::size_t>(index));
    if (request.phase1) {
      for (Projection projection : request.projections) {
        if (layer.kind == LayerKind::dense) {
          if (!layer.dense[projection].present()) throw lacks(index, "dense MLP", projection);
          add({index, MatrixRole::dense, projection, -1}, layer.dense[projection]);
          continue;
        }
        for (std::size_t e = 0; e < layer.routed.size(); ++e) {
          if (!layer.routed[e][projection].present()) throw lacks(index, "routed expert", projection);
          add({index, MatrixRole::routed, projection, static_cast<int>(e)}, layer.routed[e][projection]);
        }
        if (layer.shared) {
          if (!(*layer.shared)[projection].present()) throw lacks(index, "shared expert", projection);
          add({index, MatrixRole::shared, projection, 0}, (*layer.shared)[projection]);
        }
      }
    }
    if (request.routers && layer.kind == LayerKind::moe) {
      if (!layer.router.present())
        throw InputError(ckpt.listing_path().string(), fmt::format("router of layer {}", index),
                         "is missing: phase 2 analyses the router of every MoE layer");
      add({index, MatrixRole::router, Projection::down, -1}, layer.router);
    }
  }
  // File order, so each rank's contiguous range is read front to back.
  std::stable_sort(items.begin(), items.end(), [&](const WorkItem& a, const WorkItem& b) {
    const TensorRecord& ra = *a.weight.weight;
    const TensorRecord& rb = *b.weight.weight;
    if (ra.shard != rb.shard) {
      const std::string& fa = ckpt.shards()[ra.shard].file_name;
      const std::string& fb = ckpt.shards()[rb.shard].file_name;
      if (natural_less(fa, fb) || natural_less(fb, fa)) return natural_less(fa, fb);
      return fa < fb;  // equal as numbers ("x-01", "x-1"): any fixed order
    }
    return ra.info->begin < rb.info->begin;
  });
  return items;
}

std::vector<std::size_t> partition_contiguous(std::span<const double> costs, int parts) {
  VINDEX_ASSERT(parts >= 1);
  const std::size_t n = costs.size();
  const auto P = static_cast<std::size_t>(parts);

  // Greedy cut for a bottleneck `limit`, leaving at least one item for each later part while
  // items last. Returns the boundaries, or an empty vector when `limit` is infeasible.
  const auto cut = [&](double limit) {
    std::vector<std::size_t> bounds{0};
    std::size_t i = 0;
    for (std::size_t part = 0; part < P; ++part) {
      const std::size_t later_parts = P - part - 1;
      double load = 0;
      while (i < n) {
        if (n - i <= later_parts && load > 0) break;  // keep one item for each later part
        if (load > 0 && load + costs[i] > limit) break;
        load += costs[i];
        ++i;
      }
      bounds.push_back(i);
    }
    if (i < n) return std::vector<std::size_t>{};
    return bounds;
  };

  const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
  double lo = costs.empty() ? 0.0 : *std::max_element(costs.begin(), costs.end());
  double hi = std::max(total, lo);
  // The optimum lies in [max item, total]; bisect to a relative precision far below any cost.
  for (int iter = 0; iter < 200 && hi - lo > 1e-12 * std::max(hi, 1e-300); ++iter) {
    const double mid = lo + (hi - lo) / 2;
    (cut(mid).empty() ? lo : hi) = mid;
  }
  std::vector<std::size_t> bounds = cut(hi);
  VINDEX_ASSERT(bounds.size() == P + 1 && bounds.back() == n);
  return bounds;
}

std::vector<int> slice_layers(std::span<const WorkItem> items, std::span<const int> layers, int index, int count) {
  VINDEX_ASSERT(count >= 1 && index >= 0 && index < count);
  std::vector<int> sorted(layers.begin(), layers.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> costs(sorted.size(), 0.0);
  for (const WorkItem& item : items) {
    const auto it = std::lower_bound(sorted.begin(), sorted.end(), item.key.layer);
    if (it != sorted.end() && *it == item.key.layer) costs[static_cast<std::size_t>(it - sorted.begin())] += item.cost;
  }
  const std::vector<std::size_t> bounds = partition_contiguous(costs, count);
  const auto i = static_cast<std::size_t>(index);
  return {sorted.begin() + static_cast<std::ptrdiff_t>(bounds[i]), sorted.begin() + static_cast<std::ptrdiff_t>(bounds[i + 1])};
}

}  // namespace vindex
