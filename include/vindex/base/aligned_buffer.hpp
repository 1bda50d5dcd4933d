// A growable, uninitialised, 64-byte aligned array for BLAS operands (std::vector gives 16-byte
// alignment, which costs BLAS kernels speed and makes their rounding depend on the address).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace vindex {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // Makes room for `count` elements; contents are not preserved.
  T* reserve(std::size_t count) {
    if (count > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const std::size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = count;
    }
    return data_;
  }
  T* data() noexcept { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace vindex
