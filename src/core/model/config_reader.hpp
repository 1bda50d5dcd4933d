// Typed, bounded reads of config.json values for layout detection. Every problem is an
// InputError naming the file and the key (with its path inside nested objects, such as
// "text_config.hidden_size"); bounds keep hostile values from becoming huge allocations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vindex::layout_detail {

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& config, std::string file, std::string path = "");

  bool has(const char* key) const;
  // "" when absent or null.
  std::string string(const char* key) const;
  // An integer in [lo, hi]; `fallback` when absent (nullopt: required).
  int integer(const char* key, std::optional<int> fallback, int lo, int hi) const;
  // A list of integers in [lo, hi]; empty when absent.
  std::vector<int> integer_list(const char* key, int lo, int hi) const;
  std::vector<std::string> string_list(const char* key) const;
  // The nested object `key` (e.g. text_config) when present, else this reader.
  ConfigReader nested_or_self(const char* key) const;

  const nlohmann::json& json() const { return config_; }
  const std::string& file() const { return file_; }
  std::string key_path(const char* key) const {
    if (key_names_ && key_names_->contains(key)) return (*key_names_)[key].get<std::string>();
    return path_.empty() ? key : path_ + "." + key;
  }
  // What messages call the keys, when the config was translated from another file's keys (a GGUF
  // file's "llama.embedding_length" for hidden_size): an object of strings, kept by reference.
  void set_key_names(const nlohmann::json* names) { key_names_ = names; }

 private:
  const nlohmann::json& config_;
  std::string file_;
  std::string path_;
  const nlohmann::json* key_names_ = nullptr;
};

inline constexpr int kMaxLayers = 100'000;
inline constexpr int kMaxExperts = 1'000'000;
inline constexpr int kMaxDimension = 1 << 30;

}  // namespace vindex::layout_detail
