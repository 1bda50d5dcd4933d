// What a run's results depend on -- code version, model, k values, precision, backend, phases,
// projections, layers --
// recorded in journals and in the outputs' provenance, so that a resume or a merge never mixes
// results computed from different inputs. Ranks and threads are not part of it: they do not change
// a single value (the tests assert so).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/run/run_request.hpp"

namespace vindex {

// "vindex_mpi 0.1.0"
std::string tool_name();

// The serialization of a RunRequest as a run resolved it (backend, layers), with the model's
// fingerprint and the build.
struct RunIdentity {
  std::string tool;               // "vindex_mpi 0.1.0"
  std::string git_commit;
  std::string model_fingerprint;  // Checkpoint::fingerprint()
  std::string backend;            // "cpu"
  std::string precision;          // "auto" | "fp32" | "fp64"
  std::vector<int> ks;
  std::vector<int> phases;        // {1}, {2} or {1, 2}
  std::vector<std::string> projections;  // phase 1's: "gate_proj", "up_proj", "down_proj"
  std::vector<int> layers;        // the layers this run computes

  static RunIdentity of(const RunRequest& request, BackendKind backend, std::vector<int> layers,
                        std::string model_fingerprint);
  nlohmann::ordered_json to_json() const;
  // The request recorded (phases, projections, k values, precision; the layers as --layers), for
  // readers of a recorded identity (merge).
  RunRequest request() const;
};

// Reads an identity written by to_json(); a malformed one is an InputError naming `file`.
RunIdentity identity_from_json(const nlohmann::json& j, const std::string& file);

// Compares a recorded identity with `expected`; "" when they agree, else which field differs and
// how ("model_fingerprint: recorded 1a2b..., this run 3c4d..."). `ignore_layers` for merging
// slices, whose layers differ by design.
std::string identity_difference(const nlohmann::json& recorded, const RunIdentity& expected, bool ignore_layers = false);

}  // namespace vindex
