// RunIdentity as JSON, and the comparison behind "journal/slice from a different run" messages.
#include "vindex/run/run_identity.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/version.hpp"

namespace vindex {

std::string tool_name() { return fmt::format("vindex_mpi {}", kVersion); }

RunIdentity RunIdentity::of(const RunRequest& request, BackendKind backend, std::vector<int> layers,
                            std::string model_fingerprint) {
  std::vector<std::string> projections;
  for (Projection p : request.projections) projections.push_back(projection_name(p));
  return RunIdentity{tool_name(),      kGitCommit,        std::move(model_fingerprint),
                     backend_name(backend), precision_policy_name(request.precision), request.ks,
                     request.phases,   projections,       std::move(layers)};
}

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

RunRequest RunIdentity::request() const {
  RunRequest request;
  request.phases = phases;
  request.ks = ks;
  request.projections.clear();
  for (const std::string& name : projections)
    for (Projection p : kProjections)
      if (name == projection_name(p)) request.projections.push_back(p);
  for (PrecisionPolicy p : {PrecisionPolicy::automatic, PrecisionPolicy::fp32, PrecisionPolicy::fp64})
    if (precision == precision_policy_name(p)) request.precision = p;
  request.backend = backend == backend_name(BackendKind::cuda) ? BackendChoice::cuda : BackendChoice::cpu;
  request.layers.emplace(layers.begin(), layers.end());
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
  const PlanRequest request = id.request().plan();
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
