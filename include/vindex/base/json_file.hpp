// Strict reading of the JSON files of a checkpoint (config.json, the shard index): size-bounded,
// UTF-8, duplicate keys rejected, errors naming the file.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vindex {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; duplicate keys at any depth and nesting deeper than kMaxJsonDepth are
// FormatErrors naming `file_label`.
nlohmann::json parse_json_strict(std::string_view text, const std::string& file_label);

// A short description of an untrusted value for an error message: scalars as JSON text, arrays
// and objects by their type (never serialised whole).
std::string describe_json_value(const nlohmann::json& value);

// True when `text` is well-formed UTF-8; otherwise `bad_offset` is the first offending byte.
bool is_valid_utf8(std::string_view text, std::size_t& bad_offset);

// Reads and parses a JSON file of at most `max_bytes`.
nlohmann::json read_json_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace vindex
