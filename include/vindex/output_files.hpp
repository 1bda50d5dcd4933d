// Output files are written under a temporary name in the output directory and renamed into place
// only when all of them are complete, so a failed run never leaves a partial file or a partial set
// of files under the final names.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace vindex {

// How a run treats an existing output directory: `fresh` wants it absent or empty; `overwrite`
// replaces its vindex files and discards an unfinished run's journal; `resume` keeps the journal
// (journal.hpp) to finish that run and replaces the vindex files.
enum class OutputMode { fresh, overwrite, resume };

// An exclusive lock on the output directory (flock on the directory itself: no file is created),
// held by rank 0 for a whole run, so that two runs into one directory (a requeued job overlapping
// its predecessor) cannot remove each other's temporaries and journals. A directory already locked
// is a UsageError; where the file system cannot lock (some network file systems), the run goes on
// unlocked.
class OutputLock {
 public:
  explicit OutputLock(const std::filesystem::path& dir);
  ~OutputLock();
  OutputLock(OutputLock&& other) noexcept;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  OutputLock& operator=(OutputLock&&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Checks --out: an existing path must be a directory, empty in `fresh` mode, and the `outputs`
// present must be regular files the run may replace (a symbolic link is refused, never followed).
// Creates it when missing, locks it (before anything in it is cleaned up or replaced) and removes
// temporary files that an aborted run left for these outputs. Entries named in `kept` belong to
// the job (the slices `merge` reads) and do not count as content. Problems are UsageErrors. The
// returned lock is the caller's to hold for the whole run.
[[nodiscard]] OutputLock prepare_output_directory(const std::filesystem::path& dir, OutputMode mode,
                                                  std::span<const std::string> outputs,
                                                  std::span<const std::string> kept = {});

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
  bool committed() const { return committed_; }

 private:
  std::filesystem::path temp_;
  std::filesystem::path final_;
  bool committed_ = false;
};

// Commits every file or none: all destinations are checked before the first rename, and if a
// rename still fails, the files of this set already renamed are removed again, as are older files
// of the remaining names, so the directory never holds a mixed set.
void commit_all(std::span<StagedFile* const> files);

// Writes `text` to `path` (a StagedFile's temporary) and flushes it to disk.
void write_file_synced(const std::filesystem::path& path, std::string_view text);

}  // namespace vindex
