// libFuzzer target: model.safetensors.index.json. Every input must either parse into plain shard
// file names or be refused with a vindex::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vindex/base/errors.hpp"
#include "vindex/format/safetensors_index.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [tensor, shard] : vindex::parse_safetensors_index(text, "fuzz.index.json"))
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") __builtin_trap();
  } catch (const vindex::Error&) {
  }
  return 0;
}
