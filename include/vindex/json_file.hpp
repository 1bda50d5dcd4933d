// Strict reading of the JSON files of a checkpoint (config.json, the shard index): size-bounded,
// UTF-8, duplicate keys rejected, errors naming the file.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vindex {

// Parses `text`; duplicate keys at any depth are a FormatError naming `file_label`.
nlohmann::json parse_json_strict(std::string_view text, const std::string& file_label);

// Reads and parses a JSON file of at most `max_bytes`.
nlohmann::json read_json_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace vindex
