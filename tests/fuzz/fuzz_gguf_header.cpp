// libFuzzer target: the GGUF header parser. Every input must either parse or be refused with a
// vindex::Error; anything else (a crash, a sanitizer report, another exception) is a bug. Each
// input is read as a whole file (parse_gguf), whose accepted tensors must be aligned, inside the
// file and disjoint, and as the first half of a file of its full length (parse_gguf_header_prefix,
// the step read_gguf_header repeats with more bytes), which must either parse or ask for more bytes
// than it was given and no more than the file holds. Every metadata getter is called on every key.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"

namespace {

template <typename Get>
void try_get(Get get) {
  try {
    (void)get();
  } catch (const vindex::FormatError&) {
  }
}

void check_accepted(const vindex::GgufHeader& h) {
  if (!std::has_single_bit(h.alignment) || h.data_offset % h.alignment != 0 || h.data_offset < h.header_size)
    __builtin_trap();
  std::vector<const vindex::GgufTensorInfo*> order;
  for (const auto& t : h.tensors) {
    if (t.offset < h.data_offset || (t.offset - h.data_offset) % h.alignment != 0) __builtin_trap();
    if (t.byte_size == 0 || t.offset > h.file_size || t.byte_size > h.file_size - t.offset) __builtin_trap();
    if (h.find(t.name) != &t || t.dims.size() > 4) __builtin_trap();
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->byte_size) __builtin_trap();
  // Each getter either returns the value or throws a FormatError naming the key.
  for (const auto& entry : h.metadata.entries()) {
    const std::string& key = entry.first;
    const vindex::GgufMetadata& m = h.metadata;
    try_get([&] { return m.get_string(key); });
    try_get([&] { return m.get_uint(key); });
    try_get([&] { return m.get_int(key); });
    try_get([&] { return m.get_float(key); });
    try_get([&] { return m.get_bool(key); });
    try_get([&] { return m.get_array_of_strings(key); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  try {
    check_accepted(vindex::parse_gguf(bytes, "fuzz.gguf"));
  } catch (const vindex::Error&) {
  }
  try {
    std::uint64_t needed = 0;
    const auto prefix = bytes.first(size / 2);
    const auto h = vindex::parse_gguf_header_prefix(prefix, size, "fuzz.gguf", needed);
    if (h) {
      check_accepted(*h);
    } else if (needed <= prefix.size() || needed > size) {
      __builtin_trap();
    }
  } catch (const vindex::Error&) {
  }
  return 0;
}
