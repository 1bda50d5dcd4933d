// vindex.h5: the full per-matrix tables (singular values, var@k, statistics) of every layer.
// Schema (README, "Output files"): /phase1/layer_LLL/<group>/{singular_values, var_at_k,
// expert_ids, <one dataset per kScalarStats entry>, gram_bits, eigen_bits, weight_digest} for each
// projection group ("down_proj", "shared_gate_proj", ...), and /phase2/layer_LLL/router/{the same,
// bias}.
//
// The file is built in memory (HDF5's core driver, no backing store) and returned as bytes, which
// the output set writes itself: HDF5 never writes to the output file system, so a full disk is
// one failed write() with the path, never a failed flush inside HDF5 (after which, HDF5 1.10 keeps
// the half-closed file in its tables and its atexit cleanup crashed the process: exit 139).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "vindex/output/aggregate.hpp"

namespace vindex {

inline constexpr const char* kVindexFormatName = "vindex";
inline constexpr const char* kVindexFormatVersion = "2.1";

struct Hdf5RootInfo {
  std::string model;
  std::string tool_version;
  std::string provenance_json;
  std::string run_id;
};

// The bytes of vindex.h5 for these tables.
std::vector<std::byte> vindex_h5_image(const VindexTables& tables, const Hdf5RootInfo& root);

std::string hdf5_library_version();

}  // namespace vindex
