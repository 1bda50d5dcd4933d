// POSIX file access for the checkpoint reader (checked open, size, positioned reads) and the
// journal (exclusive create, appends, data sync).
#include "vindex/base/file_descriptor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex {

std::string file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
    default: return "a special file";
  }
}

FileDescriptor FileDescriptor::open_read(const std::filesystem::path& path, LinkPolicy links) {
  FileDescriptor fd;
  fd.path_ = path.string();
  const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (links == LinkPolicy::refuse ? O_NOFOLLOW : 0);
  fd.fd_ = ::open(fd.path_.c_str(), flags);
  if (fd.fd_ < 0) {
    const int err = errno;
    if (err == ELOOP && links == LinkPolicy::refuse)
      throw InputError(fd.path_, "", "is a symbolic link; refusing to follow it");
    throw InputError(fd.path_, "", fmt::format("cannot be opened: {}", std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd.fd_, &st) != 0) throw IoError(fd.path_, "fstat", errno);
  if (!S_ISREG(st.st_mode))
    throw InputError(fd.path_, "", fmt::format("is {}, not a regular file", file_type_name(st.st_mode)));
  const int status = ::fcntl(fd.fd_, F_GETFL);
  if (status < 0 || ::fcntl(fd.fd_, F_SETFL, status & ~O_NONBLOCK) != 0) throw IoError(fd.path_, "fcntl", errno);
  return fd;
}

FileDescriptor FileDescriptor::create_exclusive(const std::filesystem::path& path) {
  FileDescriptor fd;
  fd.path_ = path.string();
  fd.fd_ = ::open(fd.path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd.fd_ < 0) throw IoError(fd.path_, "create", errno);
  return fd;
}

std::string FileDescriptor::proc_path() const { return fmt::format("/proc/self/fd/{}", fd_); }

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

std::uint64_t FileDescriptor::read_some(std::byte* out, std::uint64_t count, std::uint64_t offset) const {
  std::uint64_t done = 0;
  while (done < count) {
    const ssize_t got = ::pread(fd_, out + done, count - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "pread", errno);
    }
    if (got == 0) break;
    done += static_cast<std::uint64_t>(got);
  }
  return done;
}

void FileDescriptor::read_exact(std::byte* out, std::uint64_t count, std::uint64_t offset) const {
  if (read_some(out, count, offset) != count)
    throw IoError(path_, fmt::format("unexpected end of file reading bytes [{}, {})", offset, offset + count));
}

std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  const FileDescriptor fd = FileDescriptor::open_read(path);
  const std::uint64_t size = fd.size();
  if (size > max_bytes) throw InputError(fd.path(), "", fmt::format("is {} bytes, more than the {} allowed", size, max_bytes));
  std::string text(size, '\0');
  fd.read_exact(reinterpret_cast<std::byte*>(text.data()), size, 0);
  return text;
}

}  // namespace vindex
