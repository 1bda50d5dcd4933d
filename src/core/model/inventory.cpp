// Tensor-name patterns and byte counts of a checkpoint (README, "Inspecting a checkpoint").
#include "vindex/model/inventory.hpp"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "vindex/base/natural_order.hpp"

namespace vindex {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string tensor_name_pattern(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool seen_number = false;
  std::string_view previous;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = name.find('.', start);
    const std::string_view part = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (start > 0) out += '.';
    if (all_digits(part)) {
      out += !seen_number ? "{L}" : previous == "experts" ? "{E}" : "{N}";
      seen_number = true;
    } else {
      out += part;
    }
    previous = part;
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

std::vector<TensorPattern> summarize_tensor_names(const Checkpoint& checkpoint) {
  std::vector<TensorPattern> patterns;
  std::unordered_map<std::string, std::size_t> index;
  for (const std::string& name : checkpoint.tensor_names()) {
    const TensorRecord* record = checkpoint.find(name);
    if (record == nullptr) continue;  // Checkpoint::open guarantees presence; be safe anyway
    const TensorInfo& info = *record->info;
    std::string pattern = tensor_name_pattern(name);
    auto [it, inserted] = index.try_emplace(pattern, patterns.size());
    if (inserted) {
      patterns.push_back({std::move(pattern), 0, 0, {}, info.shape, true});
    }
    TensorPattern& p = patterns[it->second];
    ++p.count;
    p.bytes += info.byte_size();
    ++p.dtypes[stored_type_name(info)];
    if (info.shape != p.first_shape) p.uniform_shape = false;
  }
  std::sort(patterns.begin(), patterns.end(),
            [](const TensorPattern& a, const TensorPattern& b) { return natural_less(a.pattern, b.pattern); });
  return patterns;
}

std::vector<MatrixBytes> matrix_bytes(const ModelLayout& layout) {
  std::vector<MatrixBytes> groups;
  const auto add = [&](const std::string& group, std::uint64_t bytes) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const MatrixBytes& g) { return g.group == group; });
    if (it == groups.end()) it = groups.insert(groups.end(), MatrixBytes{group, 0, 0});
    ++it->matrices;
    it->bytes += bytes;
  };
  const auto add_set = [&](const char* role, const ProjectionSet& set) {
    for (Projection p : kProjections)
      if (set[p].present()) add(std::string(role) + " " + projection_name(p), set[p].stored_bytes());
  };
  for (const LayerLayout& layer : layout.layers) {
    if (layer.kind == LayerKind::dense) {
      add_set("dense", layer.dense);
      continue;
    }
    for (const ProjectionSet& expert : layer.routed) add_set("routed", expert);
    if (layer.shared) add_set("shared", *layer.shared);
    if (layer.router.present())
      add("router", layer.router.stored_bytes() + (layer.router_bias ? layer.router_bias->info->byte_size() : 0));
  }
  return groups;
}

}  // namespace vindex
