// POSIX file access for the checkpoint reader (open, size, positioned reads) and the journal
// (exclusive create, appends, data sync).
#include "vindex/file_descriptor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "vindex/errors.hpp"

namespace vindex {

FileDescriptor FileDescriptor::open_read(const std::filesystem::path& path) {
  FileDescriptor fd;
  fd.path_ = path.string();
  fd.fd_ = ::open(fd.path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd.fd_ < 0) throw IoError(fd.path_, "open", errno);
  struct stat st {};
  if (::fstat(fd.fd_, &st) != 0) throw IoError(fd.path_, "fstat", errno);
  if (!S_ISREG(st.st_mode)) throw IoError(fd.path_, "is not a regular file");
  return fd;
}

FileDescriptor FileDescriptor::create_exclusive(const std::filesystem::path& path) {
  FileDescriptor fd;
  fd.path_ = path.string();
  fd.fd_ = ::open(fd.path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd.fd_ < 0) throw IoError(fd.path_, "create", errno);
  return fd;
}

void FileDescriptor::append_all(std::span<const std::byte> bytes) const {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "write", errno);
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

void FileDescriptor::sync_data() const {
  if (::fdatasync(fd_) != 0) throw IoError(path_, "fdatasync", errno);
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

FileDescriptor::FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

std::uint64_t FileDescriptor::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw IoError(path_, "fstat", errno);
  return static_cast<std::uint64_t>(st.st_size);
}

void FileDescriptor::read_exact(std::byte* out, std::uint64_t count, std::uint64_t offset) const {
  while (count > 0) {
    const ssize_t got = ::pread(fd_, out, count, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "pread", errno);
    }
    if (got == 0) throw IoError(path_, fmt::format("unexpected end of file at byte {}", offset));
    out += got;
    count -= static_cast<std::uint64_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
}

std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  const FileDescriptor fd = FileDescriptor::open_read(path);
  const std::uint64_t size = fd.size();
  if (size > max_bytes) throw IoError(fd.path(), fmt::format("is {} bytes, more than the {} allowed", size, max_bytes));
  std::string text(size, '\0');
  fd.read_exact(reinterpret_cast<std::byte*>(text.data()), size, 0);
  return text;
}

}  // namespace vindex
