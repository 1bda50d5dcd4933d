// Writing the output files of phases 1 and 2 (see spectra_outputs.hpp).
#include "spectra_outputs.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/errors.hpp"
#include "vindex/hdf5_output.hpp"
#include "vindex/json_output.hpp"
#include "vindex/output_files.hpp"
#include "vindex/version.hpp"

namespace vindex::app {

const std::vector<std::string>& vindex_output_files() {
  static const std::vector<std::string> files{"vindex.h5", "phase1_moe_svd.json", "phase2_router_svd.json",
                                              "phase3_routing_stats.json", "phase1_moe_svd_agg.json",
                                              "moe_config.json"};
  return files;
}

std::string tool_name() { return fmt::format("vindex_mpi {}", kVersion); }

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

nlohmann::ordered_json library_versions(const std::string& mpi_version) {
  return {{"mpi", mpi_version},
          {"hdf5", hdf5_library_version()},
          {"fmt", FMT_VERSION},
          {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                        NLOHMANN_JSON_VERSION_PATCH)},
          {"compiler", __VERSION__}};
}

void write_spectra_outputs(const std::filesystem::path& out, const VindexTables& tables, const std::string& model_name,
                           const ModelLayout& layout, const nlohmann::ordered_json& provenance,
                           const std::string& headline) {
  // All files are written under temporary names first and renamed only once all are complete.
  std::vector<std::unique_ptr<StagedFile>> staged;
  const auto stage = [&](const char* name) -> StagedFile& { return *staged.emplace_back(std::make_unique<StagedFile>(out, name)); };
  write_vindex_h5(stage("vindex.h5").temp_path(), tables, {model_name, tool_name(), provenance.dump()});
  if (tables.phase1)
    write_file_synced(stage("phase1_moe_svd.json").temp_path(),
                      phase1_summary_json(tables, model_name, provenance).dump(2) + "\n");
  if (tables.phase2)
    write_file_synced(stage("phase2_router_svd.json").temp_path(),
                      phase2_router_json(tables, model_name, provenance).dump(2) + "\n");
  if (tables.phase3)
    write_file_synced(stage("phase3_routing_stats.json").temp_path(),
                      phase3_routing_json(tables, model_name, provenance).dump(2) + "\n");
  write_file_synced(stage("phase1_moe_svd_agg.json").temp_path(),
                    phase1_constants_json(tables, model_name, provenance).dump(2) + "\n");
  write_file_synced(stage("moe_config.json").temp_path(), layout.to_json(model_name).dump(2) + "\n");
  std::vector<StagedFile*> files;
  for (auto& f : staged) files.push_back(f.get());
  // A file of a phase this run did not compute may be an earlier run's (--overwrite, --resume,
  // merge --overwrite): it goes, so the directory never holds a mixed set.
  for (const std::string& name : vindex_output_files()) {
    if (std::any_of(files.begin(), files.end(), [&](const StagedFile* f) { return f->final_path().filename() == name; }))
      continue;
    std::error_code ec;
    std::filesystem::remove(out / name, ec);
    if (ec) throw IoError((out / name).string(), "cannot remove this output of an earlier run: " + ec.message());
  }
  commit_all(files);

  fmt::print("\n{}\n{}", headline, tables.groups.empty() ? std::string() : format_layer_table(tables));
  if (tables.phase3) fmt::print("\n{}", format_phase3_table(*tables.phase3));
  std::vector<std::string> paths;
  for (const StagedFile* f : files) paths.push_back(f->final_path().string());
  fmt::print("Wrote {}\n", fmt::join(paths, ", "));
  std::fflush(stdout);
}

}  // namespace vindex::app
