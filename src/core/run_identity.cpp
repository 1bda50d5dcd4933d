// RunIdentity as JSON, and the comparison behind "journal/slice from a different run" messages.
#include "vindex/run_identity.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "vindex/errors.hpp"

namespace vindex {

nlohmann::ordered_json RunIdentity::to_json() const {
  nlohmann::ordered_json j;
  j["tool"] = tool;
  j["git_commit"] = git_commit;
  j["model_fingerprint"] = model_fingerprint;
  j["backend"] = backend;
  j["precision"] = precision;
  j["k"] = ks;
  j["phases"] = phases;
  j["projections"] = projections;
  j["layers"] = layers;
  return j;
}

PlanRequest RunIdentity::plan_request() const {
  PlanRequest request;
  request.phase1 = std::find(phases.begin(), phases.end(), 1) != phases.end();
  request.routers = std::find(phases.begin(), phases.end(), 2) != phases.end();
  request.projections.clear();
  for (const std::string& name : projections)
    for (Projection p : kProjections)
      if (name == projection_name(p)) request.projections.push_back(p);
  return request;
}

RunIdentity identity_from_json(const nlohmann::json& j, const std::string& file) {
  RunIdentity id;
  try {
    id = RunIdentity{j.at("tool").get<std::string>(),      j.at("git_commit").get<std::string>(),
                     j.at("model_fingerprint").get<std::string>(), j.at("backend").get<std::string>(),
                     j.at("precision").get<std::string>(),  j.at("k").get<std::vector<int>>(),
                     j.at("phases").get<std::vector<int>>(), j.at("projections").get<std::vector<std::string>>(),
                     j.at("layers").get<std::vector<int>>()};
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file, "", fmt::format("run identity in its provenance is malformed: {}", e.what()));
  }
  const PlanRequest request = id.plan_request();
  if (request.projections.size() != id.projections.size() || (!request.phase1 && !request.routers))
    throw InputError(file, "", "run identity names an unknown projection or no phase");
  return id;
}

std::string identity_difference(const nlohmann::json& recorded, const RunIdentity& expected, bool ignore_layers) {
  if (!recorded.is_object()) return "no run identity recorded";
  const nlohmann::json want = nlohmann::json(expected.to_json());
  for (const auto& [key, value] : want.items()) {
    if (ignore_layers && key == "layers") continue;
    if (!recorded.contains(key)) return fmt::format("{}: not recorded", key);
    if (recorded[key] != value) return fmt::format("{}: recorded {}, this run {}", key, recorded[key].dump(), value.dump());
  }
  return "";
}

}  // namespace vindex
