// Output directory checks and write-then-rename staging of output files.
#include "vindex/output_files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include <fmt/format.h>

#include "vindex/errors.hpp"
#include "vindex/journal.hpp"

namespace vindex {
namespace fs = std::filesystem;

namespace {

std::string temp_prefix(const std::string& name) { return "." + name + ".partial-"; }

// A destination is usable when absent or a regular file. A symbolic link is refused: renaming over
// it would not follow it, but whoever placed it there expects something else to happen.
void check_replaceable(const fs::path& path, const std::string& label) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (fs::is_symlink(status))
    throw UsageError(fmt::format("{}: {} is a symbolic link; refusing to replace it", label, path.filename().string()));
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw UsageError(fmt::format("{}: {} exists and is not a file", label, path.filename().string()));
}

}  // namespace

OutputLock prepare_output_directory(const fs::path& dir, OutputMode mode, std::span<const std::string> outputs,
                                    std::span<const std::string> kept) {
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) {
    fs::create_directories(dir, ec);
    if (ec) throw UsageError(fmt::format("--out {}: cannot create directory: {}", dir.string(), ec.message()));
    return OutputLock(dir);
  }
  if (!fs::is_directory(fs::status(dir, ec)))
    throw UsageError(fmt::format("--out {}: exists and is not a directory", dir.string()));
  OutputLock lock(dir);  // before anything in it is cleaned up or replaced
  const std::string label = "--out " + dir.string();
  // Temporary files of a run that was killed are ours to remove; anything else is the user's.
  bool empty = true;
  bool journal = false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kJournalDirectory) {
      journal = true;
      continue;
    }
    if (std::find(kept.begin(), kept.end(), name) != kept.end()) continue;
    bool stale = false;
    for (const std::string& out : outputs) stale |= name.starts_with(temp_prefix(out));
    if (stale) {
      std::error_code ignored;  // a leftover we cannot remove only costs disk space
      fs::remove(entry.path(), ignored);
    } else {
      empty = false;
    }
  }
  if (ec) throw IoError(dir.string(), "cannot be read: " + ec.message());
  if (journal && mode == OutputMode::fresh)
    throw UsageError(fmt::format("{}: holds the journal of an unfinished run (pass --resume to finish it, or --overwrite "
                                 "to start over)", label));
  if (!empty && mode == OutputMode::fresh)
    throw UsageError(fmt::format("{}: directory is not empty (pass --overwrite to replace its vindex files)", label));
  for (const std::string& out : outputs) check_replaceable(dir / out, label);
  if (journal && mode == OutputMode::overwrite) {
    fs::remove_all(dir / kJournalDirectory, ec);
    if (ec) throw IoError((dir / kJournalDirectory).string(), "cannot remove the old journal: " + ec.message());
  }
  return lock;
}

OutputLock::OutputLock(const fs::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(dir.string(), "open", errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw UsageError(fmt::format("--out {}: another vindex_mpi run is using this directory (it holds its lock); wait "
                                   "for it to end, or choose another --out",
                                   dir.string()));
    // ENOLCK, EINVAL...: this file system cannot lock; go on without.
  }
}

OutputLock::OutputLock(OutputLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

StagedFile::StagedFile(const fs::path& dir, std::string name)
    : temp_(dir / fmt::format("{}{}", temp_prefix(name), ::getpid())), final_(dir / name) {
  std::error_code ec;
  fs::remove(temp_, ec);
}

StagedFile::~StagedFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void StagedFile::commit() {
  const int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(temp_.string(), "open", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(temp_.string(), "fsync", err);
  if (std::rename(temp_.c_str(), final_.c_str()) != 0) throw IoError(final_.string(), "rename", errno);
  committed_ = true;
}

namespace {

// The renames are durable only once the directory itself is synced (before a journal that could
// redo the work is removed).
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw IoError(dir.string(), "open", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(dir.string(), "fsync", err);
}

}  // namespace

void commit_all(std::span<StagedFile* const> files) {
  for (StagedFile* f : files) check_replaceable(f->final_path(), "--out " + f->final_path().parent_path().string());
  for (std::size_t i = 0; i < files.size(); ++i) {
    try {
      files[i]->commit();
    } catch (...) {
      std::error_code ec;
      for (StagedFile* f : files) fs::remove(f->final_path(), ec);
      throw;
    }
  }
  if (!files.empty()) sync_directory(files.front()->final_path().parent_path());
}

void write_file_synced(const fs::path& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw IoError(path.string(), "open", errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw IoError(path.string(), "write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) throw IoError(path.string(), "close", errno);
}

}  // namespace vindex
