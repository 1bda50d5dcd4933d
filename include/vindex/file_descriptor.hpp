// RAII owner of a POSIX file descriptor, with the few reads the checkpoint reader needs and the
// appends the journal needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace vindex {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  static FileDescriptor open_read(const std::filesystem::path& path);
  // Creates a new file for appending; an existing file or a symbolic link there is an IoError.
  static FileDescriptor create_exclusive(const std::filesystem::path& path);
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  std::uint64_t size() const;
  // Reads exactly `count` bytes at `offset`; a short read (file shrank) is an IoError.
  void read_exact(std::byte* out, std::uint64_t count, std::uint64_t offset) const;
  // Writes all of `bytes` at the end of the file (retrying short writes).
  void append_all(std::span<const std::byte> bytes) const;
  // fdatasync: the data written so far survives a crash.
  void sync_data() const;

 private:
  int fd_ = -1;
  std::string path_;
};

// Reads a whole (small) file such as config.json; refuses files over `max_bytes`.
std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace vindex
