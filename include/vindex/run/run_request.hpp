// What a run computes, typed: built once from the command line (app/options.cpp) and checked there,
// then read by every stage. RunIdentity (run_identity.hpp) is its serialization for journals and
// provenance.
#pragma once

#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "vindex/model/layout.hpp"
#include "vindex/numerics/accuracy_policy.hpp"
#include "vindex/phase3/statistics.hpp"
#include "vindex/run/device_assignment.hpp"
#include "vindex/run/plan.hpp"

namespace vindex {

inline constexpr int kDefaultK = 64;

struct RunRequest {
  std::vector<int> phases{1};                             // ascending, unique: 1, 2 and/or 3
  std::vector<Projection> projections{Projection::down};  // phase 1's, in gate, up, down order
  std::vector<int> ks{kDefaultK};                         // ascending, unique, positive
  PrecisionPolicy precision = PrecisionPolicy::automatic;
  BackendChoice backend = BackendChoice::cpu;
  std::optional<std::set<int>> layers;       // --layers; nullopt: every layer of the model
  std::optional<std::pair<int, int>> slice;  // --slice I/N: the I-th of N layer slices
  int phase3_tokens = kDefaultSampledTokens;  // phase 3: tokens sampled for C1, C3 and C5

  bool has_phase(int phase) const;
  // What phases 1 and 2 plan.
  PlanRequest plan() const;
  // The layers this request selects from a model of `num_layers` layers, ascending; a layer the
  // model lacks is a UsageError naming --layers.
  std::vector<int> selected_layers(int num_layers) const;
};

}  // namespace vindex
