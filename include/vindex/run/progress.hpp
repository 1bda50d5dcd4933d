// Progress of a long run as rank 0 reports it: matrices done of total across all ranks, rate and
// ETA. On a terminal the line is rewritten in place; otherwise (Slurm logs, pipes) a plain line is
// written every `interval` seconds, plus the first and the last.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace vindex {

class ProgressPrinter {
 public:
  ProgressPrinter(std::string label, std::size_t total, std::FILE* stream, bool in_place, double interval_seconds);

  void update(std::size_t done);
  void finish(std::size_t done);  // prints the final line (and ends the in-place line)

  static std::string format_duration(double seconds);

 private:
  std::string line(std::size_t done, double elapsed) const;

  std::string label_;
  std::size_t total_;
  std::FILE* stream_;
  bool in_place_;
  double interval_;
  std::chrono::steady_clock::time_point start_;
  double last_print_ = -1e300;
};

}  // namespace vindex
