// Where the slices of a Slurm array job go, and finding them again for `merge`: slice I of N of
// a job whose --out is OUT is written to OUT/slices/III-of-NNN.
#pragma once

#include <filesystem>
#include <vector>

namespace vindex::app {

// Inside --out, so that a job never writes outside the directory it was given.
inline constexpr const char* kSlicesDirectory = "slices";

std::filesystem::path slices_root(const std::filesystem::path& out);
std::filesystem::path slice_directory(const std::filesystem::path& out, int index, int count);

struct SliceDirectory {
  std::filesystem::path path;
  int index = 0;
  int count = 0;
};

// The III-of-NNN directories under OUT/slices, in order. A directory of another name there, or
// slices of different counts, are UsageErrors; so is a missing slices root.
std::vector<SliceDirectory> find_slices(const std::filesystem::path& out);

}  // namespace vindex::app
