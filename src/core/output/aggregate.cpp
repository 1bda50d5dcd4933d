// Arranging gathered results into per-layer tables and reducing them to summaries.
#include "vindex/output/aggregate.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/numerics/random_floor.hpp"

namespace vindex {

GroupSummary summarize_group(const MatrixGroup& g, std::size_t k_count) {
  GroupSummary s;
  s.n_matrices = g.size();
  s.n_fp64_gram = static_cast<std::size_t>(std::count(g.gram_bits.begin(), g.gram_bits.end(), 64));
  s.n_fp32_eigen = static_cast<std::size_t>(std::count(g.eigen_bits.begin(), g.eigen_bits.end(), 32));
  std::vector<double> column(g.size());
  for (std::size_t j = 0; j < k_count; ++j) {
    for (std::size_t i = 0; i < g.size(); ++i) column[i] = g.var_at_k[i * k_count + j];
    s.var_at_k.push_back(summarize(column));
  }
  for (std::size_t i = 0; i < kScalarStats.size(); ++i) s.scalars[i] = summarize(g.scalars[i]);
  return s;
}

const Summary& GroupSummary::scalar(std::string_view name) const {
  for (std::size_t i = 0; i < kScalarStats.size(); ++i)
    if (name == kScalarStats[i].name) return scalars[i];
  throw InternalError(fmt::format("no statistic named {}", name));
}

VindexTables assemble_tables(std::vector<MatrixResult> results, std::span<const WorkItem> plan,
                             const ModelLayout& layout, std::span<const int> ks, const PlanRequest& request) {
  // Check the gathered set against the plan: each planned key exactly once, nothing else.
  std::map<MatrixKey, MatrixResult*> by_key;
  for (MatrixResult& r : results)
    if (!by_key.emplace(r.key, &r).second)
      throw InternalError(fmt::format("matrix {} of layer {} (expert {}) was computed twice", r.key.group(), r.key.layer, r.key.expert));
  if (by_key.size() != plan.size())
    throw InternalError(fmt::format("gathered {} results for {} planned matrices", by_key.size(), plan.size()));
  for (const WorkItem& item : plan)
    if (!by_key.count(item.key))
      throw InternalError(fmt::format("no result for {} of layer {} (expert {})", item.key.group(), item.key.layer, item.key.expert));

  VindexTables tables;
  tables.ks.assign(ks.begin(), ks.end());
  tables.phase1 = request.phase1;
  tables.phase2 = request.routers;
  if (request.phase1) tables.projections = request.projections;
  // Key order is (layer, role, projection, expert): dense/routed, shared, router; experts ascending.
  MatrixGroup* current = nullptr;
  for (auto& [key, r] : by_key) {
    if (!current || current->layer != key.layer || current->role != key.role || current->projection != key.projection) {
      MatrixGroup g;
      g.layer = key.layer;
      g.kind = layout.layers.at(static_cast<std::size_t>(key.layer)).kind;
      g.role = key.role;
      g.projection = key.projection;
      g.name = key.group();
      g.rows = r->rows;
      g.cols = r->cols;
      tables.groups.push_back(std::move(g));
      current = &tables.groups.back();
    }
    if (r->rows != current->rows || r->cols != current->cols || r->singular_values.size() != current->sv_count() ||
        r->stats.var_at_k.size() != ks.size())
      throw InternalError(fmt::format("inconsistent result shape in layer {} group {}", key.layer, current->name));
    current->expert_ids.push_back(key.expert);
    current->singular_values.insert(current->singular_values.end(), r->singular_values.begin(), r->singular_values.end());
    current->var_at_k.insert(current->var_at_k.end(), r->stats.var_at_k.begin(), r->stats.var_at_k.end());
    for (std::size_t i = 0; i < kScalarStats.size(); ++i) current->scalars[i].push_back(r->stats.*kScalarStats[i].member);
    current->gram_bits.push_back(static_cast<std::uint8_t>(r->gram_bits));
    current->eigen_bits.push_back(static_cast<std::uint8_t>(r->eigen_bits));
    current->weight_digests.push_back(r->weight_digest);
  }
  return tables;
}

std::optional<LayerTemperature> layer_temperature(const VindexTables& tables) {
  const auto k64 = std::find(tables.ks.begin(), tables.ks.end(), 64);
  if (k64 == tables.ks.end()) return std::nullopt;
  const auto j = static_cast<std::size_t>(k64 - tables.ks.begin());
  LayerTemperature t;
  std::vector<double> medians, floors;
  for (const MatrixGroup& g : tables.groups) {
    if (g.kind != LayerKind::moe || g.role != MatrixRole::routed || g.projection != Projection::down) continue;
    medians.push_back(summarize_group(g, tables.ks.size()).var_at_k[j].median);
    floors.push_back(random_floor_var_at_k(g.rows, g.cols, 64));
    t.layers.push_back(g.layer);
  }
  if (medians.empty()) return std::nullopt;
  const Summary s = summarize(medians);
  t.value = s.median;
  t.min = s.min;
  t.max = s.max;
  t.random_floor = summarize(floors).median;
  return t;
}

}  // namespace vindex
