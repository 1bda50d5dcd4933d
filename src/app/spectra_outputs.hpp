// The output files of phases 1 and 2 (README, "Output files"), shared by a run and by `merge`:
// staged under temporary names, committed all or none, then the per-layer table on stdout.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/aggregate.hpp"
#include "vindex/layout.hpp"

namespace vindex::app {

// Every file a run may write: vindex.h5, phase1_moe_svd.json, phase2_router_svd.json,
// phase3_routing_stats.json, phase1_moe_svd_agg.json, moe_config.json (what --overwrite replaces).
const std::vector<std::string>& vindex_output_files();

// "vindex_mpi 0.1.0"
std::string tool_name();

// "phase 1 (down_proj, gate_proj), phase 2 (routers) and phase 3 (routing)", for headlines.
std::string describe_request(const PlanRequest& request, bool phase3 = false);

// Versions of the libraries this build uses, for provenance.
nlohmann::ordered_json library_versions(const std::string& mpi_version);

// Writes the files of the tables' phases into `out` and prints `headline`, the layer table and
// the paths.
void write_spectra_outputs(const std::filesystem::path& out, const VindexTables& tables, const std::string& model_name,
                           const ModelLayout& layout, const nlohmann::ordered_json& provenance,
                           const std::string& headline);

}  // namespace vindex::app
