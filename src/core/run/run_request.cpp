// RunRequest's derived views (vindex/run/run_request.hpp).
#include "vindex/run/run_request.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex {

bool RunRequest::has_phase(int phase) const { return std::find(phases.begin(), phases.end(), phase) != phases.end(); }

PlanRequest RunRequest::plan() const {
  PlanRequest request;
  request.phase1 = has_phase(1);
  request.routers = has_phase(2);
  request.projections = projections;
  return request;
}

std::vector<int> RunRequest::selected_layers(int num_layers) const {
  std::vector<int> out;
  if (!layers) {
    for (int l = 0; l < num_layers; ++l) out.push_back(l);
    return out;
  }
  for (int l : *layers) {
    if (l >= num_layers)
      throw UsageError(fmt::format("--layers: layer {} does not exist (the model has layers 0-{})", l, num_layers - 1));
    out.push_back(l);
  }
  return out;
}

}  // namespace vindex
