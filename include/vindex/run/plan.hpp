// Where work is split: the list of matrices to compute, each with an estimated cost, ordered by
// their position in the shards, and cut into one contiguous range per rank so that every rank's
// reads are sequential and the largest rank load is as small as a contiguous split allows.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vindex/model/layout.hpp"
#include "vindex/run/cost_model.hpp"

namespace vindex {

struct MatrixKey {
  int layer = 0;
  MatrixRole role = MatrixRole::routed;
  Projection projection = Projection::down;
  int expert = -1;  // routed: expert id; shared: 0; dense MLP and router: -1

  // The HDF5 group / JSON name of the matrices this key belongs to: "down_proj", "shared_down_proj",
  // "router".
  std::string group() const;
  auto operator<=>(const MatrixKey&) const = default;
};

struct WorkItem {
  MatrixKey key;
  WeightRef weight;
  std::uint64_t bytes = 0;  // stored bytes read (weight and block scale)
  double cost = 0;          // estimated seconds on one core
};

// What a run computes: the phases and, for phase 1, the projections.
struct PlanRequest {
  std::vector<Projection> projections{Projection::down};  // phase 1: of every dense MLP, routed and shared expert
  bool phase1 = true;
  bool routers = false;  // phase 2: the router of every MoE layer
};

// The matrices of the chosen layers, sorted by (shard file, offset). A requested projection that
// a layer's MLP lacks (BERT has no gate) is a UsageError naming layer and projection.
std::vector<WorkItem> plan_items(const ModelLayout& layout, const Checkpoint& checkpoint, std::span<const int> layers,
                                 const PlanRequest& request);

// Slice `index` of `count` of `layers`: contiguous runs of layers cut to balance the estimated
// cost of `items` (the plan of all those layers). A slice may be empty when count > layers.
std::vector<int> slice_layers(std::span<const WorkItem> items, std::span<const int> layers, int index, int count);

// Splits `costs` (in order) into `parts` contiguous ranges minimising the largest range sum; no
// range is left empty while another holds two or more items. Returns parts+1 boundaries.
std::vector<std::size_t> partition_contiguous(std::span<const double> costs, int parts);

}  // namespace vindex
