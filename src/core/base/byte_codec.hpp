// Little-endian byte encoding of trivially copyable values and arrays, for results sent between
// ranks. A reader that runs out of bytes throws InternalError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "vindex/base/errors.hpp"

namespace vindex {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::byte>& out) : out_(out) {}
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_array(std::span<const T> values) {
    put<std::uint64_t>(values.size());
    const auto* p = reinterpret_cast<const std::byte*>(values.data());
    out_.insert(out_.end(), p, p + values.size_bytes());
  }

 private:
  std::vector<std::byte>& out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> in) : in_(in) {}
  bool done() const { return pos_ == in_.size(); }
  template <typename T>
  T get() {
    T v;
    need(sizeof(T));
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename T>
  std::vector<T> get_array() {
    const auto count = get<std::uint64_t>();
    if (count > (in_.size() - pos_) / sizeof(T)) fail();
    std::vector<T> values(count);
    std::memcpy(values.data(), in_.data() + pos_, count * sizeof(T));
    pos_ += count * sizeof(T);
    return values;
  }

 private:
  void need(std::size_t bytes) const {
    if (in_.size() - pos_ < bytes) fail();
  }
  [[noreturn]] static void fail() { throw InternalError("truncated or malformed result buffer"); }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

}  // namespace vindex
