// RAII owner of a POSIX file descriptor, with the few reads the checkpoint reader needs and the
// appends the journal needs.
//
// Every file vindex_mpi reads is opened by open_read: with O_NONBLOCK, so that a FIFO (or a
// device) put where a file belongs cannot block the open; then the descriptor itself is checked
// with fstat, and anything but a regular file is refused before a byte is read. O_NONBLOCK is
// cleared again afterwards (it has no effect on regular files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace vindex {

// Whether open_read follows a symbolic link in the last component of the path.
enum class LinkPolicy { follow, refuse };

class FileDescriptor {
 public:
  FileDescriptor() = default;
  // Opens a regular file for reading. A missing or unreadable path, a symbolic link under
  // LinkPolicy::refuse, and anything that is not a regular file (FIFO, socket, directory, device)
  // are InputErrors naming the path (exit 3): the file is input, and it is wrong.
  static FileDescriptor open_read(const std::filesystem::path& path, LinkPolicy links = LinkPolicy::follow);
  // Creates a new file for appending; an existing file or a symbolic link there is an IoError.
  static FileDescriptor create_exclusive(const std::filesystem::path& path);
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  // "/proc/self/fd/N": this very file, for a library that opens by path (HDF5), so that what it
  // opens is the file checked here even if the name has since been replaced.
  std::string proc_path() const;
  std::uint64_t size() const;
  // Reads exactly `count` bytes at `offset`; a short read (file shrank) is an IoError.
  void read_exact(std::byte* out, std::uint64_t count, std::uint64_t offset) const;
  // Reads up to `count` bytes at `offset`, retrying short reads; returns how many were read
  // (fewer only at the end of the file). A read error is an IoError.
  std::uint64_t read_some(std::byte* out, std::uint64_t count, std::uint64_t offset) const;
  // Writes all of `bytes` at the end of the file (retrying short writes).
  void append_all(std::span<const std::byte> bytes) const;
  // fdatasync: the data written so far survives a crash.
  void sync_data() const;

 private:
  int fd_ = -1;
  std::string path_;
};

// "a FIFO", "a directory", ...: what a stat mode is, for messages.
std::string file_type_name(unsigned mode);

// Reads a whole (small) file such as config.json; a file over `max_bytes` is an InputError.
std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace vindex
