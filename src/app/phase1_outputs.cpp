#include "phase1_outputs.hpp"

#include <array>
#include <cstdio>

#include <fmt/format.h>

#include "vindex/hdf5_output.hpp"
#include "vindex/json_output.hpp"
#include "vindex/output_files.hpp"
#include "vindex/version.hpp"

namespace vindex::app {

const std::vector<std::string>& phase1_output_files() {
  static const std::vector<std::string> files{"vindex.h5", "phase1_moe_svd.json", "phase1_moe_svd_agg.json",
                                              "moe_config.json"};
  return files;
}

std::string tool_name() { return fmt::format("vindex_mpi {}", kVersion); }

nlohmann::ordered_json library_versions(const std::string& mpi_version) {
  return {{"mpi", mpi_version},
          {"hdf5", hdf5_library_version()},
          {"fmt", FMT_VERSION},
          {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                        NLOHMANN_JSON_VERSION_PATCH)},
          {"compiler", __VERSION__}};
}

void write_phase1_outputs(const std::filesystem::path& out, const Phase1Tables& tables, const std::string& model_name,
                          const ModelLayout& layout, const nlohmann::ordered_json& provenance,
                          const std::string& headline) {
  const auto& names = phase1_output_files();
  // All four are written under temporary names first and renamed only once all are complete.
  StagedFile h5(out, names[0]);
  StagedFile summary(out, names[1]);
  StagedFile constants(out, names[2]);
  StagedFile config(out, names[3]);
  write_vindex_h5(h5.temp_path(), tables, {model_name, tool_name(), provenance.dump()});
  write_file_synced(summary.temp_path(), phase1_summary_json(tables, model_name, provenance).dump(2) + "\n");
  write_file_synced(constants.temp_path(), phase1_constants_json(tables, model_name, provenance).dump(2) + "\n");
  write_file_synced(config.temp_path(), layout.to_json(model_name).dump(2) + "\n");
  const std::array<StagedFile*, 4> staged{&h5, &summary, &constants, &config};
  commit_all(staged);

  fmt::print("\n{}\n{}", headline, format_layer_table(tables));
  fmt::print("Wrote {}, {}, {}, {}\n", h5.final_path().string(), summary.final_path().string(),
             constants.final_path().string(), config.final_path().string());
  std::fflush(stdout);
}

}  // namespace vindex::app
