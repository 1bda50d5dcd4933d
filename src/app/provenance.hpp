// The provenance every output set carries (README, "Output files"): what was run, by which build, on
// which model, where and how long. Built here for a run and for `merge` alike.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../mpi/host_table.hpp"
#include "run_context.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {

// What every provenance record starts with.
struct ProvenanceHead {
  std::string run_id;
  std::string command_line;
  std::filesystem::path model;
  const RunIdentity& identity;
};

// What a run adds.
struct RunFacts {
  std::vector<int> selected_layers;  // before slicing (recorded for a slice only)
  std::string backend;               // SpectrumBackend::name()
  std::string backend_detail;        // SpectrumBackend::description()
  std::vector<mpi::HostRanks> hosts;
  double elapsed_seconds = 0;
  std::size_t resumed_matrices = 0;
  double peak_rss_mib = 0;  // the largest over ranks
};

nlohmann::ordered_json run_provenance(const ProvenanceHead& head, const RunContext& ctx, const RunFacts& facts);

// A merge's: the slices' own provenance records (`merged_from`: slice directory, run id,
// provenance), and the backend they recorded.
struct MergeFacts {
  nlohmann::ordered_json merged_from = nlohmann::ordered_json::array();
  std::string backend;
  bool verified_all = false;
  std::string started_utc;
  double elapsed_seconds = 0;
};

nlohmann::ordered_json merge_provenance(const ProvenanceHead& head, const MergeFacts& facts);

// Versions of the libraries this build uses.
nlohmann::ordered_json library_versions(const std::string& mpi_version);

}  // namespace vindex::app
