// Rank 0's reduction: the gathered per-matrix results, checked against the plan and arranged per
// (layer, group) -- the tables written to HDF5; phase 1's projections and phase 2's routers --
// plus the per-layer order statistics and the phase-1 constant C4.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vindex/model/layout.hpp"
#include "vindex/model/router_bias.hpp"
#include "vindex/numerics/stats.hpp"
#include "vindex/phase3/statistics.hpp"
#include "vindex/run/results.hpp"

namespace vindex {

// All matrices of one group of one layer ("down_proj" of the routed experts or of the dense MLP,
// "shared_down_proj", "router"), rows ordered by expert id.
struct MatrixGroup {
  int layer = 0;
  LayerKind kind = LayerKind::moe;
  MatrixRole role = MatrixRole::routed;
  Projection projection = Projection::down;
  std::string name;
  std::uint64_t rows = 0, cols = 0;
  std::vector<std::int32_t> expert_ids;
  std::vector<float> singular_values;  // [n, min(rows, cols)]
  std::vector<double> var_at_k;        // [n, ks.size()]
  std::array<std::vector<double>, kScalarStats.size()> scalars;  // by kScalarStats: [n] each
  std::vector<std::uint8_t> gram_bits;   // 32 or 64: precision of the Gram product
  std::vector<std::uint8_t> eigen_bits;  // 32 or 64: precision of the eigensolver
  std::vector<std::uint64_t> weight_digests;  // XXH64 of each matrix's stored bytes

  std::size_t size() const { return expert_ids.size(); }
  std::size_t sv_count() const { return rows < cols ? rows : cols; }
};

struct GroupSummary {
  std::size_t n_matrices = 0;
  std::size_t n_fp64_gram = 0;
  std::size_t n_fp32_eigen = 0;
  std::vector<Summary> var_at_k;  // one per k
  std::array<Summary, kScalarStats.size()> scalars;  // by kScalarStats
  const Summary& scalar(std::string_view name) const;
};

GroupSummary summarize_group(const MatrixGroup& group, std::size_t k_count);

struct VindexTables {
  std::vector<int> ks;
  std::vector<Projection> projections;  // phase 1's, in the order asked for; empty without phase 1
  bool phase1 = true, phase2 = false;
  std::vector<RouterBias> router_biases;  // phase 2, by layer (filled by the caller from the checkpoint)
  std::vector<MatrixGroup> groups;  // by layer; in a layer by role (dense/routed, shared, router), then projection
  std::optional<Phase3Results> phase3;  // phase 3, computed beside the spectra (filled by the caller)
};

// Arranges `results` (any order) into groups. Every planned item must appear exactly once. The
// phases and projections of the tables are what `request` asked for.
VindexTables assemble_tables(std::vector<MatrixResult> results, std::span<const WorkItem> plan,
                             const ModelLayout& layout, std::span<const int> ks, const PlanRequest& request = {});

// C4, the "layer temperature": the median over MoE layers of each layer's median var@64 of its
// routed experts, with the range of those per-layer medians, and the random floor of var@64 for
// those layers' shapes (vindex/numerics/random_floor.hpp; the median over the layers).
struct LayerTemperature {
  double value = 0;
  double min = 0, max = 0;
  double random_floor = 0;
  std::vector<int> layers;
};
std::optional<LayerTemperature> layer_temperature(const VindexTables& tables);

inline constexpr double kDissolutionThreshold = 0.15;

}  // namespace vindex
