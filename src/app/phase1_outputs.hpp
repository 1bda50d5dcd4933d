// The phase-1 output files (README, "Output files"), shared by a run and by `merge`: staged under
// temporary names, committed all or none, then the per-layer table on stdout.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/aggregate.hpp"
#include "vindex/layout.hpp"

namespace vindex::app {

// vindex.h5, phase1_moe_svd.json, phase1_moe_svd_agg.json, moe_config.json.
const std::vector<std::string>& phase1_output_files();

// "vindex_mpi 0.1.0"
std::string tool_name();

// Versions of the libraries this build uses, for provenance.
nlohmann::ordered_json library_versions(const std::string& mpi_version);

// Writes the four files into `out` and prints `headline`, the layer table and the paths.
void write_phase1_outputs(const std::filesystem::path& out, const Phase1Tables& tables, const std::string& model_name,
                          const ModelLayout& layout, const nlohmann::ordered_json& provenance,
                          const std::string& headline);

}  // namespace vindex::app
