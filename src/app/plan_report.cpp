// Text of the --dry-run plan.
#include "plan_report.hpp"

#include <fmt/format.h>

namespace vindex::app {
namespace {

std::string describe(const WorkItem& item) {
  const MatrixKey& k = item.key;
  if (k.role == MatrixRole::routed) return fmt::format("L{:03d} {} expert {}", k.layer, k.group(), k.expert);
  return fmt::format("L{:03d} {}", k.layer, k.group());
}

}  // namespace

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string format_plan(const std::string& model, std::span<const WorkItem> items, std::span<const std::size_t> bounds,
                        int threads) {
  double total_bytes = 0, total_cost = 0;
  for (const WorkItem& it : items) {
    total_bytes += static_cast<double>(it.bytes);
    total_cost += it.cost;
  }
  const int ranks = static_cast<int>(bounds.size()) - 1;
  std::string out = fmt::format(
      "Plan for {}: {} matrices, {} to read, {:.1f} core-seconds estimated (CPU backend); {} rank(s) x {} thread(s)\n",
      model, items.size(), format_bytes(total_bytes), total_cost, ranks, threads);
  out += fmt::format("{:>5}  {:>8}  {:>11}  {:>12}  {}\n", "rank", "matrices", "bytes", "est. seconds", "first -> last");
  double worst = 0;
  for (int r = 0; r < ranks; ++r) {
    double bytes = 0, cost = 0;
    for (std::size_t i = bounds[static_cast<std::size_t>(r)]; i < bounds[static_cast<std::size_t>(r) + 1]; ++i) {
      bytes += static_cast<double>(items[i].bytes);
      cost += items[i].cost;
    }
    const double seconds = cost / threads;
    worst = std::max(worst, seconds);
    const std::size_t first = bounds[static_cast<std::size_t>(r)], end = bounds[static_cast<std::size_t>(r) + 1];
    const std::string range = first == end ? "(none)" : describe(items[first]) + " -> " + describe(items[end - 1]);
    out += fmt::format("{:>5}  {:>8}  {:>11}  {:>12.1f}  {}\n", r, end - first, format_bytes(bytes), seconds, range);
  }
  const double ideal = total_cost / (static_cast<double>(ranks) * threads);
  out += fmt::format("Estimated wall time {:.1f} s (ideal split {:.1f} s). Costs are fitted to one core of the "
                     "development machine; see README, \"Performance\".\n",
                     worst, ideal);
  return out;
}

}  // namespace vindex::app
