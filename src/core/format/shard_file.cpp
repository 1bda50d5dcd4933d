// Positioned reads of a shard (see shard_file.hpp for why not mmap).
#include "vindex/format/shard_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex {

ShardFile::ShardFile(const std::filesystem::path& path) : ShardFile(FileDescriptor::open_read(path)) {}

ShardFile::ShardFile(FileDescriptor fd) : fd_(std::move(fd)), size_(fd_.size()) {}

void ShardFile::read(std::uint64_t offset, std::uint64_t length, std::byte* out, const std::string& tensor) const {
  std::uint64_t got = 0;
  while (got < length) {
    const ssize_t n = ::pread(fd_.get(), out + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError(path(), tensor, fmt::format("cannot be read at byte {}: {}", offset + got, std::strerror(errno)));
    }
    if (n == 0) break;
    got += static_cast<std::uint64_t>(n);
  }
  if (got != length)
    throw InputChangedError(path(), tensor,
                     fmt::format("the file ends at byte {} but the tensor's bytes run to {}: the shard was truncated or "
                                 "replaced while this run read it (it had {} bytes when opened)",
                                 offset + got, offset + length, size_));
}

void ShardFile::will_need(std::uint64_t offset, std::uint64_t length) const noexcept {
  if (length > 0) ::posix_fadvise(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
}

}  // namespace vindex
