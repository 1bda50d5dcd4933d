// Writing the output files of phases 1 and 2 (see spectra_outputs.hpp).
#include "spectra_outputs.hpp"

#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/base/errors.hpp"
#include "vindex/output/hdf5_output.hpp"
#include "vindex/output/json_output.hpp"
#include "vindex/model/layout_json.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {

std::string describe_request(const PlanRequest& request, bool phase3) {
  std::vector<std::string> parts;
  if (request.phase1) {
    std::vector<std::string> names;
    for (Projection p : request.projections) names.push_back(projection_name(p));
    parts.push_back(fmt::format("phase 1 ({})", fmt::join(names, ", ")));
  }
  if (request.routers) parts.push_back("phase 2 (routers)");
  if (phase3) parts.push_back("phase 3 (routing and activations)");
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : i + 1 == parts.size() ? " and " : ", ") + parts[i];
  return out;
}

std::string output_json(const std::string& run_id, const nlohmann::ordered_json& content) {
  nlohmann::ordered_json j;
  j["run_id"] = run_id;
  for (const auto& [key, value] : content.items()) j[key] = value;
  return j.dump(2) + "\n";
}

void write_spectra_outputs(const std::filesystem::path& out, const std::string& run_id, const VindexTables& tables,
                           const std::string& model_name, const ModelLayout& layout,
                           const nlohmann::ordered_json& provenance, const std::string& headline) {
  // Every file is written and synced under its temporary name first; the commit makes them the
  // directory's output set in one step (a file of a phase this run did not compute, left by an
  // earlier run, is removed in the same commit).
  OutputSet set(out, run_id);
  set.add("vindex.h5", vindex_h5_image(tables, {model_name, tool_name(), provenance.dump(), run_id}));
  if (tables.phase1) set.add("phase1_moe_svd.json", output_json(run_id, phase1_summary_json(tables, model_name, provenance)));
  if (tables.phase2) set.add("phase2_router_svd.json", output_json(run_id, phase2_router_json(tables, model_name, provenance)));
  if (tables.phase3)
    set.add("phase3_routing_stats.json", output_json(run_id, phase3_routing_json(tables, model_name, provenance)));
  set.add("phase1_moe_svd_agg.json", output_json(run_id, phase1_constants_json(tables, model_name, provenance)));
  set.add("moe_config.json", output_json(run_id, moe_config_json(layout, model_name)));
  set.commit();

  fmt::print("\n{}\n{}", headline, tables.groups.empty() ? std::string() : format_layer_table(tables));
  if (tables.phase3) fmt::print("\n{}", format_phase3_table(*tables.phase3));
  std::vector<std::string> paths;
  for (const auto& p : set.paths()) paths.push_back(p.string());
  fmt::print("Wrote {} (run {}, {})\n", fmt::join(paths, ", "), run_id, kManifestFileName);
  std::fflush(stdout);
}

}  // namespace vindex::app
