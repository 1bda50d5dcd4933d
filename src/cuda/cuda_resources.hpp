// RAII owners of the CUDA resources the backend holds: device and pinned host memory, streams,
// events, and the cuBLAS / cuSOLVER handles. Destructors never throw (a failing free is ignored:
// the process is ending or the device is lost).
#pragma once

#include <cstddef>
#include <utility>

#include "cuda_check.hpp"

namespace vindex::cuda {

struct DeviceMemory {
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    VINDEX_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  static void release(void* p) { cudaFree(p); }
};

struct PinnedHostMemory {  // page-locked: copies to and from the device run asynchronously
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    VINDEX_CUDA_CHECK(cudaMallocHost(&p, bytes));
    return p;
  }
  static void release(void* p) { cudaFreeHost(p); }
};

// `count` elements of T in the memory `Memory` provides.
template <typename T, typename Memory>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t count) : count_(count) {
    if (count) ptr_ = static_cast<T*>(Memory::allocate(count * sizeof(T)));
  }
  ~Buffer() {
    if (ptr_) Memory::release(ptr_);
  }
  Buffer(Buffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    return *this;
  }
  // Grows (never shrinks) to hold `count` elements; the contents are not kept.
  void reserve(std::size_t count) {
    if (count > count_) *this = Buffer(count);
  }
  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

template <typename T>
using DeviceBuffer = Buffer<T, DeviceMemory>;
template <typename T>
using PinnedBuffer = Buffer<T, PinnedHostMemory>;

class Stream {
 public:
  Stream() { VINDEX_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const { VINDEX_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_{};
};

class Event {
 public:
  Event() { VINDEX_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t stream) { VINDEX_CUDA_CHECK(cudaEventRecord(e_, stream)); }
  cudaEvent_t get() const { return e_; }
  // Milliseconds from `start` to this event (both recorded and complete).
  float since(const Event& start) const {
    float ms = 0;
    VINDEX_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }

 private:
  cudaEvent_t e_{};
};

class CublasHandle {
 public:
  CublasHandle() { check(cublasCreate(&h_), "cublasCreate"); }
  ~CublasHandle() { cublasDestroy(h_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_{};
};

class CusolverHandle {
 public:
  CusolverHandle() {
    check(cusolverDnCreate(&h_), "cusolverDnCreate");
    check(cusolverDnCreateParams(&params_), "cusolverDnCreateParams");
  }
  ~CusolverHandle() {
    cusolverDnDestroyParams(params_);
    cusolverDnDestroy(h_);
  }
  CusolverHandle(const CusolverHandle&) = delete;
  CusolverHandle& operator=(const CusolverHandle&) = delete;
  cusolverDnHandle_t get() const { return h_; }
  cusolverDnParams_t params() const { return params_; }

 private:
  cusolverDnHandle_t h_{};
  cusolverDnParams_t params_{};
};

}  // namespace vindex::cuda
