// Read-only mmap of a shard, with page prefetch and release around each tensor.
#include "vindex/mapped_file.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "vindex/errors.hpp"
#include "vindex/file_descriptor.hpp"

namespace vindex {
namespace {

std::uint64_t page_size() {
  static const std::uint64_t size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path.string()) {
  const FileDescriptor fd = FileDescriptor::open_read(path);
  size_ = fd.size();
  if (size_ == 0) throw IoError(path_, "is empty");
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw IoError(path_, "mmap", errno);
  data_ = static_cast<const std::byte*>(p);
  // The descriptor closes here; the mapping keeps the file referenced.
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

void MappedFile::prefetch(std::uint64_t offset, std::uint64_t length) const noexcept {
  if (offset >= size_ || length == 0) return;
  const std::uint64_t start = offset / page_size() * page_size();
  const std::uint64_t end = std::min(size_, offset + length);
  ::madvise(const_cast<std::byte*>(data_) + start, end - start, MADV_WILLNEED);
}

void MappedFile::release(std::uint64_t offset, std::uint64_t length) const noexcept {
  const std::uint64_t ps = page_size();
  const std::uint64_t start = (offset + ps - 1) / ps * ps;
  const std::uint64_t end = std::min(size_, offset + length) / ps * ps;
  if (end <= start) return;
  ::madvise(const_cast<std::byte*>(data_) + start, end - start, MADV_DONTNEED);
}

}  // namespace vindex
