// The model name written to outputs and reports.
#pragma once

#include <string>

#include "vindex/format/checkpoint.hpp"

namespace vindex::app {

// `name_option` when given, else config.json's _name_or_path, else the directory's name; control
// characters escaped (printable.hpp).
std::string model_name_of(const std::string& name_option, const Checkpoint& checkpoint);

}  // namespace vindex::app
