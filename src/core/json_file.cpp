// Strict JSON parsing shared by the safetensors header, index and config readers.
#include "vindex/json_file.hpp"

#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "vindex/errors.hpp"
#include "vindex/file_descriptor.hpp"
#include "vindex/safetensors.hpp"

namespace vindex {

nlohmann::json parse_json_strict(std::string_view text, const std::string& file_label) {
  using json = nlohmann::json;
  std::size_t bad = 0;
  if (!is_valid_utf8(text, bad)) throw FormatError(file_label, "", fmt::format("not valid UTF-8 (byte {})", bad));
  // nlohmann keeps the last of duplicate keys silently; two entries of one name are ambiguous.
  std::vector<std::unordered_set<std::string>> open_objects;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw FormatError(file_label, "", fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth));
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) throw FormatError(file_label, key, "duplicate name");
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    throw FormatError(file_label, "", fmt::format("not valid JSON: {}", e.what()));
  }
}

std::string describe_json_value(const nlohmann::json& value) {
  if (value.is_primitive()) {
    std::string text = value.dump();
    if (text.size() > 80) text = text.substr(0, 77) + "...";
    return text;
  }
  return fmt::format("a JSON {}", value.type_name());
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  return parse_json_strict(read_text_file(path, max_bytes), path.string());
}

}  // namespace vindex
