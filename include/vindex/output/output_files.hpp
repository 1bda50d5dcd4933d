// The output directory: its checks and lock, and the output set committed as one step.
//
// A run's files (vindex.h5 and the JSON files) form one set, every file carrying the run's id.
// Each is written under a temporary name (.NAME.partial-RUNID) and synced; then
//   1. the commit record .vindex-commit.json -- the manifest to be: the run id, every file with its
//      size and SHA-256, and the outputs of an earlier run that this run did not write -- is
//      written under a temporary name, synced and renamed into place, and the directory synced:
//      from here on the commit only goes forward;
//   2. the previous manifest (vindex-manifest.json) is removed, the temporaries are renamed to
//      their final names, the earlier run's other outputs removed, the directory synced;
//   3. the commit record is renamed to vindex-manifest.json and the directory synced: the single
//      step at which the new set is complete.
// A run killed anywhere in 1-3 leaves the commit record and its synced temporaries: the next run
// into the directory (--resume, --overwrite, merge) finishes the commit before anything else
// (or, when a temporary is gone, removes the set so that no mixed one remains). Readers that
// honour the manifest (merge, `inspect --outputs`, the report tool) accept a set only when the
// manifest is there and every file matches it and carries its run id.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vindex {

// Every file a run may write (what --overwrite replaces), vindex.h5 first.
const std::vector<std::string>& vindex_output_files();
inline constexpr const char* kManifestFileName = "vindex-manifest.json";
inline constexpr const char* kCommitRecordName = ".vindex-commit.json";

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

// Checks --out: an existing path must be a directory, empty in `fresh` mode, and the outputs
// present must be regular files the run may replace (a symbolic link is refused, never followed).
// Creates it when missing and locks it. Then, before anything in it is cleaned up or replaced, a
// commit that a killed run left unfinished is finished (resume and overwrite modes; `note` gets
// what was done), and temporaries of killed runs are removed. Entries named in `kept` belong to the
// job (the slices `merge` reads) and do not count as content. Problems are UsageErrors. The
// returned lock is the caller's to hold for the whole run.
[[nodiscard]] OutputLock prepare_output_directory(const std::filesystem::path& dir, OutputMode mode,
                                                  std::span<const std::string> kept = {}, std::string* note = nullptr);

// Finishes the commit a killed run left in `dir` (its .vindex-commit.json): the temporaries it
// names are renamed into place when each still matches its size and checksum; when one is gone
// or damaged, the set cannot be completed and every file it names (and the old manifest) is
// removed instead. Returns what was done, "" when there was nothing to finish.
std::string recover_interrupted_commit(const std::filesystem::path& dir);

// One run's output set: files are added (written to their temporaries and synced at once), then
// committed together as above. Abandoned (destroyed uncommitted), it removes its temporaries.
class OutputSet {
 public:
  OutputSet(std::filesystem::path dir, std::string run_id);
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  // Writes `bytes` as the temporary of output `name`; a full disk or other write error is an
  // IoError naming the path (the temporary is removed).
  void add(const std::string& name, std::span<const std::byte> bytes);
  void add(const std::string& name, std::string_view text) { add(name, std::as_bytes(std::span(text.data(), text.size()))); }
  // Commits the set; every other name in vindex_output_files() present in the directory is
  // removed in the same commit.
  void commit();
  std::vector<std::filesystem::path> paths() const;  // final paths, in the order added

 private:
  struct File {
    std::string name;
    std::uint64_t bytes = 0;
    std::string sha256;
  };
  std::filesystem::path dir_;
  std::string run_id_;
  std::vector<File> files_;
  bool committed_ = false;
};

// A committed output set as its manifest describes it.
struct ManifestEntry {
  std::string name;
  std::uint64_t bytes = 0;
  std::string sha256;
};
struct OutputManifest {
  std::string run_id;
  std::vector<ManifestEntry> files;
  std::vector<std::string> removed;
};

// Checks the output set in `dir` as a reader must before trusting it: the manifest exists (not an
// unfinished commit), every file it names is a regular file of its size and SHA-256 and carries
// its run id (the JSON files' "run_id", vindex.h5's root attribute), and no other vindex output
// lies beside them. Anything else is an InputError naming the directory and the file.
OutputManifest verify_output_set(const std::filesystem::path& dir);

// The temporary name of output `name` of run `run_id`.
std::string staged_name(std::string_view name, std::string_view run_id);

// A new run id: 16 hex digits from the system's random source.
std::string new_run_id();

}  // namespace vindex
