// Reading vindex.h5 back into per-matrix results: what `vindex_mpi merge` joins. Values come back
// bit for bit as written, so a merged file equals the file of a single run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "vindex/run/results.hpp"

namespace vindex {

struct VindexFileContents {
  std::string run_id;
  std::string model;
  std::string tool;
  std::string provenance_json;
  std::vector<int> ks;
  std::vector<MatrixResult> results;
};

// Reads the root attributes and every /phase1 group. A file that is not a vindex file of this
// format version, or whose datasets disagree in shape, is an InputError naming file and object.
VindexFileContents read_vindex_h5(const std::filesystem::path& path);

// Only the run id of a vindex.h5 (its format checked as above).
std::string read_vindex_run_id(const std::filesystem::path& path);
// The same for any HDF5 output of `format` and `version` (cross_cka.h5).
std::string read_output_run_id(const std::filesystem::path& path, const char* format, const char* version);

}  // namespace vindex
