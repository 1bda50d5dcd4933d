// libFuzzer target: the safetensors header validator. Every input must either parse or be refused
// with a vindex::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Two readings of each input: as a whole file (length prefix, header, data), and as
// [8-byte data size][header JSON], which reaches the JSON checks with plausible sizes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "vindex/base/errors.hpp"
#include "vindex/format/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  try {
    const vindex::SafetensorsHeader h = vindex::parse_safetensors(bytes, "fuzz");
    for (const auto& t : h.tensors)
      if (t.end < t.begin || t.end > h.data_size) __builtin_trap();  // accepted offsets must be in range
  } catch (const vindex::Error&) {
  }
  if (size >= 8) {
    std::uint64_t data_size = 0;
    std::memcpy(&data_size, data, 8);
    const std::string_view json(reinterpret_cast<const char*>(data) + 8, size - 8);
    try {
      const vindex::SafetensorsHeader h = vindex::parse_header_json(json, json.size(), data_size, "fuzz");
      std::uint64_t covered = 0;
      for (const auto& t : h.tensors) covered += t.byte_size();
      if (covered != data_size) __builtin_trap();  // accepted tensors must tile the data exactly
    } catch (const vindex::Error&) {
    }
  }
  return 0;
}
