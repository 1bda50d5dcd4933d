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

void prepare_output_directory(const fs::path& dir, bool overwrite) {
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(fs::status(dir, ec)))
      throw UsageError(fmt::format("--out {}: exists and is not a directory", dir.string()));
    if (!overwrite && !fs::is_empty(dir, ec))
      throw UsageError(fmt::format("--out {}: directory is not empty (pass --overwrite to replace its vindex files)", dir.string()));
    if (ec) throw IoError(dir.string(), "cannot be read: " + ec.message());
    return;
  }
  fs::create_directories(dir, ec);
  if (ec) throw UsageError(fmt::format("--out {}: cannot create directory: {}", dir.string(), ec.message()));
}

StagedFile::StagedFile(const fs::path& dir, std::string name)
    : temp_(dir / fmt::format(".{}.partial-{}", name, ::getpid())), final_(dir / name) {
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
