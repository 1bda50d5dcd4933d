// Typed reads of config.json (see config_reader.hpp).
#include "config_reader.hpp"

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex::layout_detail {

ConfigReader::ConfigReader(const nlohmann::json& config, std::string file, std::string path)
    : config_(config), file_(std::move(file)), path_(std::move(path)) {}

bool ConfigReader::has(const char* key) const { return config_.contains(key) && !config_[key].is_null(); }

std::string ConfigReader::string(const char* key) const {
  if (!has(key)) return "";
  if (!config_[key].is_string())
    throw InputError(file_, "", fmt::format("'{}' is {}, expected a string", key_path(key), describe_json_value(config_[key])));
  return config_[key].get<std::string>();
}

int ConfigReader::integer(const char* key, std::optional<int> fallback, int lo, int hi) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    throw InputError(file_, "", fmt::format("has no '{}', which the MLP layout needs", key_path(key)));
  }
  const nlohmann::json& v = config_[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi)
    throw InputError(file_, "", fmt::format("'{}' is {}, expected an integer from {} to {}", key_path(key),
                                            describe_json_value(v), lo, hi));
  return static_cast<int>(v.get<std::int64_t>());
}

std::vector<int> ConfigReader::integer_list(const char* key, int lo, int hi) const {
  std::vector<int> out;
  if (!has(key)) return out;
  const nlohmann::json& v = config_[key];
  const auto bad = [&] {
    return InputError(file_, "", fmt::format("'{}' is {}, expected a list of integers from {} to {}", key_path(key),
                                             describe_json_value(v), lo, hi));
  };
  if (!v.is_array() || v.size() > static_cast<std::size_t>(kMaxLayers)) throw bad();
  for (const auto& e : v) {
    if (!e.is_number_integer() || e.get<std::int64_t>() < lo || e.get<std::int64_t>() > hi) throw bad();
    out.push_back(static_cast<int>(e.get<std::int64_t>()));
  }
  return out;
}

std::vector<std::string> ConfigReader::string_list(const char* key) const {
  std::vector<std::string> out;
  if (!has(key) || !config_[key].is_array()) return out;
  for (const auto& e : config_[key])
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

ConfigReader ConfigReader::nested_or_self(const char* key) const {
  if (has(key) && config_[key].is_object()) return ConfigReader(config_[key], file_, key_path(key));
  return *this;
}

}  // namespace vindex::layout_detail
