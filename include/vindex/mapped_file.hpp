// RAII read-only memory mapping of a whole file. Pages are faulted in as tensors are read and
// handed back (madvise) once a tensor is done, so a rank's resident memory is bounded by the
// matrices in flight rather than by shard size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace vindex {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::uint64_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

  // Hints that [offset, offset+length) will be read soon.
  void prefetch(std::uint64_t offset, std::uint64_t length) const noexcept;
  // Drops this process's pages of the range (the page cache keeps them); later reads fault them
  // back in. Only whole pages inside the range are dropped.
  void release(std::uint64_t offset, std::uint64_t length) const noexcept;

 private:
  const std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::string path_;
};

}  // namespace vindex
