// Internal to the core's HDF5 reader and writer: RAII ownership of HDF5 identifiers.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

#include "vindex/base/errors.hpp"

namespace vindex::hdf5 {

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer, const char* call, const std::string& object)
      : id_(id), closer_(closer), object_(object) {
    if (id_ < 0) throw Hdf5Error(call, object);
  }
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  // Closes now and checks: closing a file is where HDF5 writes what it still buffers.
  void close() {
    const herr_t status = closer_(id_);
    id_ = -1;
    if (status < 0) throw Hdf5Error("close", object_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_), object_(std::move(other.object_)) { other.id_ = -1; }
  Handle& operator=(Handle&&) = delete;
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  Closer closer_;
  std::string object_;
};

inline void check(herr_t status, const char* call, const std::string& object) {
  if (status < 0) throw Hdf5Error(call, object);
}

// Failures are reported through typed errors with the call and object; HDF5's own stack dump
// would only interleave with other ranks' output.
inline void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

}  // namespace vindex::hdf5
