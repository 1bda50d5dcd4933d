// Phase 2's router biases (DeepSeek-V3/Kimi-K2's e_score_correction_bias, GPT-OSS's router.bias):
// small vectors read on rank 0 straight from the checkpoint and summarised beside the router's
// spectrum.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"

namespace vindex {

struct RouterBias {
  int layer = 0;
  std::string tensor;
  std::vector<double> values;  // [experts], as stored, widened to float64
};

struct BiasSummary {
  double mean = 0, std = 0, min = 0, max = 0, l2_norm = 0;  // std: population (ddof 0)
};

// The biases of the routers of `layers` that have one, by layer.
std::vector<RouterBias> read_router_biases(const ModelLayout& layout, const Checkpoint& checkpoint,
                                           std::span<const int> layers);

BiasSummary summarize_bias(std::span<const double> values);

}  // namespace vindex
