// One open shard of a checkpoint, read with pread into the caller's buffers -- never memory-mapped.
//
// Why not mmap: a mapped file that shrinks under a run (a shard truncated, or rewritten in place,
// while it is read) kills the reading process with SIGBUS, which Open MPI reports as a signal
// death with no file named. A positioned read of a range past the new end simply returns short,
// which becomes an InputError naming the shard and the tensor (exit 3). The copy costs about 2 ms
// per Kimi-K2 expert on the development machine against ~0.5 s of spectrum (README, "Performance").
//
// The descriptor is the one the header was validated from, so header and data come from the same
// file even if its name is replaced during the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "vindex/base/file_descriptor.hpp"

namespace vindex {

class ShardFile {
 public:
  // Opens `path` with FileDescriptor::open_read (a regular file, or an InputError).
  explicit ShardFile(const std::filesystem::path& path);
  explicit ShardFile(FileDescriptor fd);
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;

  const std::string& path() const noexcept { return fd_.path(); }
  const FileDescriptor& descriptor() const noexcept { return fd_; }
  // The size when opened (what the header was validated against).
  std::uint64_t size() const noexcept { return size_; }

  // Reads bytes [offset, offset + length) of the file into `out`. Fewer bytes than asked (the
  // file shrank) or a read error is an InputError naming the file and `tensor`.
  void read(std::uint64_t offset, std::uint64_t length, std::byte* out, const std::string& tensor) const;
  // Hints that the range will be read soon (the kernel reads it ahead); best effort.
  void will_need(std::uint64_t offset, std::uint64_t length) const noexcept;

 private:
  FileDescriptor fd_;
  std::uint64_t size_ = 0;
};

}  // namespace vindex
