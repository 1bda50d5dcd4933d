// Output files are written under a temporary name in the output directory and renamed into place
// only when complete, so a failed run never leaves a partial file under a final name.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace vindex {

// Checks --out: an existing path must be a directory, and an empty one unless `overwrite`.
// Creates it when missing. Problems are UsageErrors.
void prepare_output_directory(const std::filesystem::path& dir, bool overwrite);

class StagedFile {
 public:
  StagedFile(const std::filesystem::path& dir, std::string name);
  ~StagedFile();  // removes the temporary file unless committed
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;

  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // Flushes the temporary file to disk and renames it to its final name.
  void commit();

 private:
  std::filesystem::path temp_;
  std::filesystem::path final_;
  bool committed_ = false;
};

// Writes `text` to `path` (a StagedFile's temporary) and flushes it to disk.
void write_file_synced(const std::filesystem::path& path, std::string_view text);

}  // namespace vindex
