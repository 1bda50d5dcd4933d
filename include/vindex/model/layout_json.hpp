// moe_config.json: the detected layout as JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "vindex/model/layout.hpp"

namespace vindex {

// The content of moe_config.json.
nlohmann::ordered_json moe_config_json(const ModelLayout& layout, const std::string& model_name);

}  // namespace vindex
