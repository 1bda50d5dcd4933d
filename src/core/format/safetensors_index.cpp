// model.safetensors.index.json: which shard holds each tensor.
#include "vindex/format/safetensors_index.hpp"

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace {

// Shard names come from a downloaded file: only plain file names inside the model directory.
void check_shard_name(const std::string& name, const std::string& label, const std::string& tensor) {
  const bool plain = !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                     name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
  if (!plain)
    throw FormatError(label, tensor, fmt::format("shard name '{}' is not a plain file name in the model directory", name));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_safetensors_index(std::string_view text, const std::string& label) {
  const nlohmann::json index = parse_json_strict(text, label);
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
    throw FormatError(label, "", "has no \"weight_map\" object");
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& [tensor, file] : index.at("weight_map").items()) {
    if (!file.is_string()) throw FormatError(label, tensor, "weight_map entry is not a file name string");
    check_shard_name(file.get_ref<const std::string&>(), label, tensor);
    entries.emplace_back(tensor, file.get<std::string>());
  }
  if (entries.empty()) throw FormatError(label, "", "weight_map is empty");
  return entries;
}

}  // namespace vindex
