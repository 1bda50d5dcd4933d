// Reading an interrupted run's journals back (see resume.hpp).
#include "resume.hpp"

#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "printable.hpp"
#include "vindex/run/journal.hpp"

namespace vindex::app {

Resumed read_resume_journal(const std::filesystem::path& out, const RunIdentity& identity,
                            std::span<const WorkItem> items) {
  JournalContents contents = read_journals(out, identity);
  std::map<MatrixKey, std::uint64_t> index_of;
  for (std::size_t i = 0; i < items.size(); ++i) index_of.emplace(items[i].key, i);
  Resumed resumed{{}, {}, contents.files, contents.torn_records, contents.skipped.size()};
  std::vector<std::string> warnings = std::move(contents.skipped);
  std::vector<bool> taken(items.size(), false);
  for (JournalContents::Entry& e : contents.results) {
    const MatrixResult& r = e.result;
    const auto it = index_of.find(r.key);
    const std::string problem = it == index_of.end() ? "a matrix this run does not plan"
                                                     : result_problem(r, items[it->second], identity.ks.size());
    if (!problem.empty()) {
      ++resumed.rejected;
      warnings.push_back(fmt::format("journal {}: layer {} {} expert {}: {}; recomputed", e.file, r.key.layer,
                                     r.key.group(), r.key.expert, problem));
      continue;
    }
    if (taken[it->second]) continue;  // a second copy (two journals of one matrix): the first stands
    taken[it->second] = true;
    resumed.done_items.push_back(it->second);
    resumed.results.push_back(std::move(e.result));
  }
  constexpr std::size_t kMaxWarnings = 20;
  for (std::size_t i = 0; i < std::min(warnings.size(), kMaxWarnings); ++i)
    fmt::print(stderr, "vindex_mpi: warning: {}\n", printable(warnings[i]));
  if (warnings.size() > kMaxWarnings)
    fmt::print(stderr, "vindex_mpi: warning: ... and {} more journal entries refused (recomputed)\n",
               warnings.size() - kMaxWarnings);
  return resumed;
}

}  // namespace vindex::app
