// A small work-sharing loop for I/O-bound passes over many items (the model fingerprint's samples,
// --verify-all's re-reads): `threads` threads, the caller's included, take the next index until
// none is left; the first exception stops the others and is rethrown in the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace vindex {

// Calls body(index, worker) once for every index in [0, n); worker in [0, threads) names the
// thread, for per-thread buffers.
template <typename Body>
void parallel_for(std::size_t n, int threads, Body&& body) {
  const auto workers = static_cast<std::size_t>(std::max(threads, 1));
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto work = [&](std::size_t worker) {
    try {
      for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) body(i, worker);
    } catch (...) {
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  {
    std::vector<std::jthread> pool;
    for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(work, w);
    work(0);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace vindex
