#include "slices.hpp"

#include <algorithm>
#include <cstdio>
#include <regex>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"

namespace vindex::app {
namespace fs = std::filesystem;

fs::path slices_root(const fs::path& out) { return out / kSlicesDirectory; }

fs::path slice_directory(const fs::path& out, int index, int count) {
  return slices_root(out) / fmt::format("{:03d}-of-{:03d}", index, count);
}

std::vector<SliceDirectory> find_slices(const fs::path& out) {
  const fs::path root = slices_root(out);
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(root, ec)))
    throw UsageError(fmt::format("{}: is a symbolic link; the slices must lie inside --out", root.string()));
  if (!fs::is_directory(root, ec))
    throw UsageError(fmt::format("{}: no slices (array tasks write OUT/slices/III-of-NNN)", root.string()));
  static const std::regex name_re(R"(([0-9]{3,})-of-([0-9]{3,}))");
  std::vector<SliceDirectory> slices;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_symlink() || !entry.is_directory() || !std::regex_match(name, m, name_re) || m[1].length() > 6 || m[2].length() > 6)
      throw UsageError(fmt::format("{}: not a slice directory (III-of-NNN)", entry.path().string()));
    slices.push_back({entry.path(), std::stoi(m[1].str()), std::stoi(m[2].str())});
  }
  if (ec) throw IoError(root.string(), "cannot be read: " + ec.message());
  std::sort(slices.begin(), slices.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  if (slices.empty()) throw UsageError(fmt::format("{}: holds no slice", root.string()));
  const int count = slices.front().count;
  for (const SliceDirectory& s : slices)
    if (s.count != count)
      throw UsageError(fmt::format("{}: slices of {} and of {} tasks are mixed", root.string(), count, s.count));
  for (int i = 0; i < count; ++i)
    if (i >= static_cast<int>(slices.size()) || slices[static_cast<std::size_t>(i)].index != i)
      throw UsageError(fmt::format("{}: slice {:03d}-of-{:03d} is missing (did that array task run?)", root.string(), i, count));
  if (static_cast<int>(slices.size()) != count)
    throw UsageError(fmt::format("{}: more slices than the {} of the job", root.string(), count));
  return slices;
}

}  // namespace vindex::app
