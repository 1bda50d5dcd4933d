// Reading and summarising router biases (see vindex/model/router_bias.hpp).
#include "vindex/model/router_bias.hpp"

#include <algorithm>
#include <cmath>

#include "vindex/base/errors.hpp"
#include "vindex/model/dequantize.hpp"

namespace vindex {

std::vector<RouterBias> read_router_biases(const ModelLayout& layout, const Checkpoint& checkpoint,
                                           std::span<const int> layers) {
  std::vector<RouterBias> out;
  for (int index : layers) {
    const LayerLayout& layer = layout.layers.at(static_cast<std::size_t>(index));
    if (layer.kind != LayerKind::moe || !layer.router_bias) continue;
    out.push_back({index, layer.router_bias->info->name, decode_vector(checkpoint.view(*layer.router_bias))});
  }
  std::sort(out.begin(), out.end(), [](const RouterBias& a, const RouterBias& b) { return a.layer < b.layer; });
  return out;
}

BiasSummary summarize_bias(std::span<const double> values) {
  VINDEX_ASSERT(!values.empty());
  BiasSummary s;
  const auto n = static_cast<double>(values.size());
  double sum = 0, sum_sq = 0;
  s.min = s.max = values[0];
  for (double v : values) {
    sum += v;
    sum_sq += v * v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  s.mean = sum / n;
  double centered = 0;  // two-pass: no cancellation for biases far from zero
  for (double v : values) centered += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(centered / n);
  s.l2_norm = std::sqrt(sum_sq);
  return s;
}

}  // namespace vindex
