#include "model_name.hpp"

#include <filesystem>
#include <system_error>

namespace vindex::app {

std::string model_name_of(const std::string& name_option, const Checkpoint& checkpoint) {
  if (!name_option.empty()) return name_option;
  const auto& config = checkpoint.config();
  if (config.contains("_name_or_path") && config["_name_or_path"].is_string() &&
      !config["_name_or_path"].get_ref<const std::string&>().empty())
    return config["_name_or_path"].get<std::string>();
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(checkpoint.directory(), ec);
  return (ec ? checkpoint.directory() : canonical).filename().string();
}

}  // namespace vindex::app
