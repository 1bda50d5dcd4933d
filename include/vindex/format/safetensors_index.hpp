// model.safetensors.index.json, the map from tensor names to the shard files that hold them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vindex {

inline constexpr std::uint64_t kMaxIndexBytes = 512ull << 20;

// Parses model.safetensors.index.json: its weight_map as (tensor, shard file name) pairs in file
// order. Shard names must be plain file names (no directory part, no "..": they come from a
// download). Malformed text is a FormatError naming `label` and the tensor.
std::vector<std::pair<std::string, std::string>> parse_safetensors_index(std::string_view text, const std::string& label);

}  // namespace vindex
