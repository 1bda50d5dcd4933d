// The --dry-run report: how the matrices are split across ranks and what each rank will do.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "vindex/run/plan.hpp"

namespace vindex::app {

std::string format_plan(const std::string& model, std::span<const WorkItem> items, std::span<const std::size_t> bounds,
                        int threads_per_rank);

std::string format_bytes(double bytes);

}  // namespace vindex::app
