// Provenance records of runs and merges (see provenance.hpp).
#include "provenance.hpp"

#include <fmt/format.h>

#include "../mpi/communicator.hpp"
#include "vindex/output/hdf5_output.hpp"
#include "vindex/version.hpp"

namespace vindex::app {
namespace {

using ojson = nlohmann::ordered_json;

ojson head_json(const ProvenanceHead& head) {
  ojson p;
  p["tool"] = tool_name();
  p["git_commit"] = kGitCommit;
  p["run_id"] = head.run_id;
  p["command_line"] = head.command_line;
  p["model_dir"] = absolute_path(head.model);
  p["model_fingerprint"] = head.identity.model_fingerprint;
  p["run_identity"] = head.identity.to_json();
  return p;
}

}  // namespace

ojson run_provenance(const ProvenanceHead& head, const RunContext& ctx, const RunFacts& facts) {
  ojson p = head_json(head);
  const RunRequest& request = ctx.options.request;
  if (request.slice)
    p["slice"] = {{"index", request.slice->first}, {"count", request.slice->second},
                  {"selected_layers", facts.selected_layers}};
  p["ranks"] = ctx.comm.size();
  p["threads_per_rank"] = ctx.threads;
  p["backend"] = facts.backend;
  p["backend_detail"] = facts.backend_detail;
  p["precision_policy"] = precision_policy_name(request.precision);
  p["versions"] = library_versions(mpi::mpi_library_version());
  p["host_rank0"] = host_name();
  p["hosts"] = ojson::array();
  for (const mpi::HostRanks& h : facts.hosts) {
    ojson ranks = ojson::array();
    for (std::size_t i = 0; i < h.ranks.size(); ++i)
      ranks.push_back({{"rank", h.ranks[i]}, {"node_rank", h.node_ranks[i]}});
    p["hosts"].push_back({{"name", h.name}, {"ranks", std::move(ranks)}});
  }
  p["started_utc"] = ctx.started_utc;
  p["elapsed_seconds"] = facts.elapsed_seconds;
  p["resumed_matrices"] = facts.resumed_matrices;
  p["resume_verified_all"] = ctx.options.verify_all;
  p["peak_rss_mib_max_rank"] = facts.peak_rss_mib;
  return p;
}

ojson merge_provenance(const ProvenanceHead& head, const MergeFacts& facts) {
  ojson p = head_json(head);
  p["merged_from"] = facts.merged_from;
  p["verified_all"] = facts.verified_all;
  p["backend"] = facts.backend;
  p["precision_policy"] = head.identity.precision;
  p["versions"] = library_versions("(not used by merge)");
  p["started_utc"] = facts.started_utc;
  p["elapsed_seconds"] = facts.elapsed_seconds;
  return p;
}

ojson library_versions(const std::string& mpi_version) {
  return {{"mpi", mpi_version},
          {"hdf5", hdf5_library_version()},
          {"fmt", FMT_VERSION},
          {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                        NLOHMANN_JSON_VERSION_PATCH)},
          {"compiler", __VERSION__}};
}

}  // namespace vindex::app
