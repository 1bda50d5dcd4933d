// Strict JSON parsing shared by the safetensors header, index and config readers.
#include "vindex/base/json_file.hpp"

#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"

namespace vindex {

bool is_valid_utf8(std::string_view text, std::size_t& bad_offset) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = s[i];
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      bad_offset = i;
      return false;
    }
    if (n - i < len) {
      bad_offset = i;
      return false;
    }
    for (std::size_t j = 1; j < len; ++j) {
      if ((s[i + j] & 0xC0) != 0x80) {
        bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

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
