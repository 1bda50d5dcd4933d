// --resume: what rank 0 reads back from the journals of an interrupted run, checked against this
// run's plan (vindex/run/journal.hpp, vindex/run/results.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "vindex/run/plan.hpp"
#include "vindex/run/results.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {

// What rank 0 found in the journal, and which plan items that covers.
struct Resumed {
  std::vector<MatrixResult> results;
  std::vector<std::uint64_t> done_items;  // indices into the plan
  std::size_t files = 0, torn = 0, rejected = 0;
};

// Every result read back is checked against the plan before it is reused (results.hpp,
// result_problem); one that fails, or a record that cannot be decoded, is reported on stderr and
// its matrices are recomputed -- never written out.
Resumed read_resume_journal(const std::filesystem::path& out, const RunIdentity& identity,
                            std::span<const WorkItem> items);

}  // namespace vindex::app
