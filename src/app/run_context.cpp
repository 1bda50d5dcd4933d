// Host facts for a run: usable cores, memory high-water mark, wall-clock time.
#include "run_context.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <ctime>
#include <thread>

#include <fmt/format.h>

namespace vindex::app {

int default_threads(int ranks_sharing_cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  int usable = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (sched_getaffinity(0, sizeof(set), &set) == 0) usable = std::max(1, CPU_COUNT(&set));
  return std::max(1, usable / std::max(1, ranks_sharing_cpus));
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace vindex::app
