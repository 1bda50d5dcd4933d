// The output files (README, "Output files"), shared by a run and by `merge`: one output set,
// committed as one step with its manifest (vindex/output/output_files.hpp), then the per-layer table on
// stdout.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/model/layout.hpp"
#include "vindex/output/aggregate.hpp"

namespace vindex::app {

// "phase 1 (down_proj, gate_proj), phase 2 (routers) and phase 3 (routing)", for headlines.
std::string describe_request(const PlanRequest& request, bool phase3 = false);

// The JSON text of an output file: its run id first, then its content.
std::string output_json(const std::string& run_id, const nlohmann::ordered_json& content);

// Writes the files of the tables' phases into `out` as the output set of run `run_id` (each file
// carries it) and prints `headline`, the layer table and the paths.
void write_spectra_outputs(const std::filesystem::path& out, const std::string& run_id, const VindexTables& tables,
                           const std::string& model_name, const ModelLayout& layout,
                           const nlohmann::ordered_json& provenance, const std::string& headline);

}  // namespace vindex::app
