// RunIdentity as JSON, and the comparison behind "journal/slice from a different run" messages.
#include "vindex/run_identity.hpp"

#include <fmt/format.h>

namespace vindex {

nlohmann::ordered_json RunIdentity::to_json() const {
  nlohmann::ordered_json j;
  j["tool"] = tool;
  j["git_commit"] = git_commit;
  j["model_fingerprint"] = model_fingerprint;
  j["backend"] = backend;
  j["precision"] = precision;
  j["k"] = ks;
  j["projection"] = projection;
  j["layers"] = layers;
  return j;
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
