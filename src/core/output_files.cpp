// Output directory checks and write-then-rename staging of output files.
#include "vindex/output_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

#include "vindex/errors.hpp"

namespace vindex {
namespace fs = std::filesystem;

namespace {

std::string temp_prefix(const std::string& name) { return "." + name + ".partial-"; }

// A destination is usable when absent or a file (a symbolic link there is replaced, not followed).
bool replaceable(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  return !fs::exists(status) || fs::is_regular_file(status) || fs::is_symlink(status);
}

}  // namespace

void prepare_output_directory(const fs::path& dir, bool overwrite, std::span<const std::string> outputs) {
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) {
    fs::create_directories(dir, ec);
    if (ec) throw UsageError(fmt::format("--out {}: cannot create directory: {}", dir.string(), ec.message()));
    return;
  }
  if (!fs::is_directory(fs::status(dir, ec)))
    throw UsageError(fmt::format("--out {}: exists and is not a directory", dir.string()));
  // Temporary files of a run that was killed are ours to remove; anything else is the user's.
  bool empty = true;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
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
  if (!empty && !overwrite)
    throw UsageError(fmt::format("--out {}: directory is not empty (pass --overwrite to replace its vindex files)", dir.string()));
  for (const std::string& out : outputs)
    if (!replaceable(dir / out))
      throw UsageError(fmt::format("--out {}: {} exists and is not a file", dir.string(), out));
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

void commit_all(std::span<StagedFile* const> files) {
  for (StagedFile* f : files)
    if (!replaceable(f->final_path())) throw IoError(f->final_path().string(), "exists and is not a file");
  for (std::size_t i = 0; i < files.size(); ++i) {
    try {
      files[i]->commit();
    } catch (...) {
      std::error_code ec;
      for (StagedFile* f : files) fs::remove(f->final_path(), ec);
      throw;
    }
  }
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
