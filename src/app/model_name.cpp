#include "model_name.hpp"

#include "printable.hpp"

#include <filesystem>
#include <system_error>

namespace vindex::app {

namespace {

std::string raw_model_name(const std::string& name_option, const Checkpoint& checkpoint) {
  if (!name_option.empty()) return name_option;
  const auto& config = checkpoint.config();
  if (config.contains("_name_or_path") && config["_name_or_path"].is_string() &&
      !config["_name_or_path"].get_ref<const std::string&>().empty())
    return config["_name_or_path"].get<std::string>();
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(checkpoint.directory(), ec);
  return (ec ? checkpoint.directory() : canonical).filename().string();
}

}  // namespace

std::string model_name_of(const std::string& name_option, const Checkpoint& checkpoint) {
  // Escaped once here, so that vindex.h5 (a C string), the JSON files and the terminal all show
  // the same name, and no control character from a config file reaches a terminal.
  return printable(raw_model_name(name_option, checkpoint));
}

}  // namespace vindex::app
