// Defensive parser of safetensors headers (see vindex/format/safetensors_header.hpp for the rules enforced).
#include "vindex/format/safetensors_header.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace {

using json = nlohmann::json;

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, bool& overflow) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) overflow = true;
  return r;
}

std::uint64_t read_u64(const json& value, const std::string& file, const std::string& tensor, const char* field) {
  if (!value.is_number_unsigned())
    throw FormatError(file, tensor, fmt::format("'{}' holds {}, expected a non-negative integer", field, describe_json_value(value)));
  return value.get<std::uint64_t>();
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, const std::string& file) {
  if (!entry.is_object()) throw FormatError(file, name, "header entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) throw FormatError(file, name, fmt::format("header entry has no '{}'", field));

  TensorInfo info;
  info.name = name;
  const json& dtype = entry.at("dtype");
  if (!dtype.is_string()) throw FormatError(file, name, "'dtype' is not a string");
  const auto parsed = parse_dtype(dtype.get_ref<const std::string&>());
  if (!parsed) throw FormatError(file, name, fmt::format("unknown dtype '{}'", dtype.get_ref<const std::string&>()));
  info.dtype = *parsed;

  const json& shape = entry.at("shape");
  if (!shape.is_array()) throw FormatError(file, name, "'shape' is not an array");
  info.shape.reserve(shape.size());
  bool overflow = false;
  std::uint64_t elements = 1;
  for (const json& dim : shape) {
    info.shape.push_back(read_u64(dim, file, name, "shape"));
    elements = checked_mul(elements, info.shape.back(), overflow);
  }
  const std::uint64_t bits = checked_mul(elements, dtype_bits(info.dtype), overflow);
  if (overflow)
    throw FormatError(file, name, fmt::format("element count of shape [{}] overflows", fmt::join(info.shape, ", ")));
  if (bits % 8 != 0)
    throw FormatError(file, name, fmt::format("shape [{}] of {} does not fill whole bytes",
                                              fmt::join(info.shape, ", "), dtype_name(info.dtype)));

  const json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) throw FormatError(file, name, "'data_offsets' is not a pair");
  info.begin = read_u64(offsets[0], file, name, "data_offsets");
  info.end = read_u64(offsets[1], file, name, "data_offsets");
  if (info.end < info.begin)
    throw FormatError(file, name, fmt::format("data_offsets [{}, {}] end before they begin", info.begin, info.end));
  if (info.end - info.begin != bits / 8)
    throw FormatError(file, name,
                      fmt::format("data_offsets [{}, {}] span {} bytes, but shape [{}] of {} needs {}", info.begin,
                                  info.end, info.end - info.begin, fmt::join(info.shape, ", "),
                                  dtype_name(info.dtype), bits / 8));
  return info;
}

}  // namespace

std::uint64_t TensorInfo::num_elements() const {
  return std::accumulate(shape.begin(), shape.end(), std::uint64_t{1}, std::multiplies<>());
}

const TensorInfo* SafetensorsHeader::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors[it->second];
}

void SafetensorsHeader::build_index() {
  by_name_.clear();
  by_name_.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) by_name_.emplace(tensors[i].name, i);
}

std::uint64_t decode_header_length(std::span<const std::byte> prefix, std::uint64_t file_size,
                                   const std::string& file_label) {
  if (prefix.size() < 8 || file_size < 8)
    throw FormatError(file_label, "", fmt::format("file of {} bytes is too short for a safetensors header", file_size));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(prefix[static_cast<std::size_t>(i)]);
  if (n > kMaxSafetensorsHeaderBytes)
    throw FormatError(file_label, "",
                      fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxSafetensorsHeaderBytes));
  if (n > file_size - 8)
    throw FormatError(file_label, "",
                      fmt::format("header length {} runs past the end of the file ({} bytes)", n, file_size));
  return n;
}

SafetensorsHeader parse_header_json(std::string_view text, std::uint64_t header_size, std::uint64_t data_size,
                                    const std::string& file) {
  std::size_t bad = 0;
  if (!is_valid_utf8(text, bad))
    throw FormatError(file, "", fmt::format("header is not valid UTF-8 (byte {} of the header)", bad));
  if (text.empty() || text.front() != '{') throw FormatError(file, "", "header does not start with '{'");
  const json doc = parse_json_strict(text, file);
  if (!doc.is_object()) throw FormatError(file, "", "header is not a JSON object");

  SafetensorsHeader header;
  header.header_size = header_size;
  header.data_size = data_size;
  header.tensors.reserve(doc.size());
  for (const auto& [name, entry] : doc.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;  // the reference reads it as an optional map
      if (!entry.is_object()) throw FormatError(file, "", "'__metadata__' is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw FormatError(file, "", fmt::format("'__metadata__' value of '{}' is not a string", key));
        header.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    header.tensors.push_back(parse_tensor_entry(name, entry, file));
  }

  // The tensors must tile [0, data_size) exactly, as in the reference implementation.
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : header.tensors) {
    if (t.begin < expected)
      throw FormatError(file, t.name,
                        fmt::format("data_offsets [{}, {}] overlap tensor '{}' that ends at {}", t.begin, t.end,
                                    previous->name, expected));
    if (t.begin > expected)
      throw FormatError(file, t.name,
                        fmt::format("data_offsets [{}, {}] leave a gap of {} bytes after {}", t.begin, t.end,
                                    t.begin - expected,
                                    previous ? fmt::format("tensor '{}'", previous->name) : "the header"));
    if (t.end > data_size)
      throw FormatError(file, t.name,
                        fmt::format("data_offsets [{}, {}] run past the {} data bytes of the file (truncated?)",
                                    t.begin, t.end, data_size));
    expected = t.end;
    previous = &t;
  }
  if (expected != data_size)
    throw FormatError(file, previous ? previous->name : "",
                      fmt::format("the file has {} bytes after the last tensor that no tensor covers", data_size - expected));
  header.build_index();
  return header;
}

SafetensorsHeader parse_safetensors(std::span<const std::byte> bytes, const std::string& file_label) {
  const std::uint64_t n = decode_header_length(bytes, bytes.size(), file_label);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  return parse_header_json(text, n, bytes.size() - 8 - n, file_label);
}

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path, const std::string& file_label) {
  return read_safetensors_header(FileDescriptor::open_read(path), file_label);
}

SafetensorsHeader read_safetensors_header(const FileDescriptor& fd, const std::string& file_label) {
  const std::uint64_t file_size = fd.size();
  std::array<std::byte, 8> prefix{};
  fd.read_exact(prefix.data(), std::min<std::uint64_t>(8, file_size), 0);
  const std::uint64_t n = decode_header_length(std::span(prefix.data(), std::min<std::uint64_t>(8, file_size)),
                                               file_size, file_label);
  std::string text(n, '\0');
  fd.read_exact(reinterpret_cast<std::byte*>(text.data()), n, 8);
  return parse_header_json(text, n, file_size - 8 - n, file_label);
}

}  // namespace vindex
