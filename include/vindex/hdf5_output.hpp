// vindex.h5: the full per-matrix tables (singular values, var@k, statistics) of every layer.
// Schema (README, "Output files"): /phase1/layer_LLL/<group>/{singular_values, var_at_k,
// expert_ids, <one dataset per kScalarStats entry>, gram_bits, eigen_bits} for each projection
// group ("down_proj", "shared_gate_proj", ...), and /phase2/layer_LLL/router/{the same, bias}.
#pragma once

#include <filesystem>
#include <string>

#include "vindex/aggregate.hpp"

namespace vindex {

inline constexpr const char* kVindexFormatName = "vindex";
inline constexpr const char* kVindexFormatVersion = "2.0";

struct Hdf5RootInfo {
  std::string model;
  std::string tool_version;
  std::string provenance_json;
};

void write_vindex_h5(const std::filesystem::path& path, const VindexTables& tables, const Hdf5RootInfo& root);

std::string hdf5_library_version();

}  // namespace vindex
