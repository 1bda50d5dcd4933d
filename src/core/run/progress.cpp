// Progress lines with rate and ETA, in place on a terminal or periodic in logs.
#include "vindex/run/progress.hpp"

#include <cmath>

#include <fmt/format.h>

namespace vindex {

ProgressPrinter::ProgressPrinter(std::string label, std::size_t total, std::FILE* stream, bool in_place,
                                 double interval_seconds)
    : label_(std::move(label)), total_(total), stream_(stream), in_place_(in_place),
      interval_(in_place ? 0.25 : interval_seconds), start_(std::chrono::steady_clock::now()) {}

std::string ProgressPrinter::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto s = static_cast<long long>(std::llround(seconds));
  return fmt::format("{:02d}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

std::string ProgressPrinter::line(std::size_t done, double elapsed) const {
  const double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  return fmt::format("[{}] {}/{} matrices ({:.1f}%)  {:.2f} matrices/s  elapsed {}  ETA {}", label_, done, total_, pct,
                     rate, format_duration(elapsed), done == total_ ? format_duration(0) : format_duration(eta));
}

void ProgressPrinter::update(std::size_t done) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (elapsed - last_print_ < interval_) return;
  last_print_ = elapsed;
  if (in_place_) {
    fmt::print(stream_, "\r{}\x1b[K", line(done, elapsed));
  } else {
    fmt::print(stream_, "{}\n", line(done, elapsed));
  }
  std::fflush(stream_);
}

void ProgressPrinter::finish(std::size_t done) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (in_place_) {
    fmt::print(stream_, "\r{}\x1b[K\n", line(done, elapsed));
  } else {
    fmt::print(stream_, "{}\n", line(done, elapsed));
  }
  std::fflush(stream_);
}

}  // namespace vindex
