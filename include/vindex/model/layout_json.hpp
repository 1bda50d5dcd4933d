// moe_config.json: the detected layout as JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "vindex/model/layout.hpp"

namespace vindex {

// quantization_config as read: method, format, and for fp8 the scaling ("block", "tensor",
// "channel"), weight_block_size (block scaling; else null), the scale tensor's name suffix and the
// dtype of the product ("float32", or "the scale's dtype").
nlohmann::ordered_json quantization_json(const BlockQuantization& q);

// The content of moe_config.json.
nlohmann::ordered_json moe_config_json(const ModelLayout& layout, const std::string& model_name);

}  // namespace vindex
