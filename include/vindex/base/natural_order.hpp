// Natural ordering of names: digit runs compare as numbers.
#pragma once

#include <string_view>

namespace vindex {

// "model-2-of-61" before "model-10-of-61"; leading zeros do not count ("x-007" before "x-8").
bool natural_less(std::string_view a, std::string_view b);

}  // namespace vindex
