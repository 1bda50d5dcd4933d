// The safetensors container: an 8-byte little-endian header length N, N bytes of UTF-8 JSON that
// describe every tensor (dtype, shape, byte offsets), then the tensors' bytes. The header is parsed
// defensively, following the rules of the reference implementation (huggingface/safetensors):
// bounded length, valid UTF-8 JSON, known dtypes, overflow-checked sizes, offsets that tile the
// data buffer exactly (no gap, overlap or trailing byte), no duplicate names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vindex/base/file_descriptor.hpp"
#include "vindex/format/dtype.hpp"

namespace vindex {

inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype{};
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the data buffer
  std::uint64_t end = 0;
  // A GGUF tensor of a block-quantized ggml type (Q8_0, Q4_K, ...): its ggml type id. Its dtype is
  // then U8 and its shape the elements' (outermost first), not the bytes'. Unset for safetensors
  // tensors and for GGUF's F32, F16 and BF16 tensors, which are read like safetensors ones.
  std::optional<std::uint32_t> ggml_type;

  std::uint64_t byte_size() const { return end - begin; }
  std::uint64_t num_elements() const;  // validated not to overflow when the header was parsed
};

// Move-only: the name index points into `tensors`, which a copy would not carry along.
class SafetensorsHeader {
 public:
  SafetensorsHeader() = default;
  SafetensorsHeader(SafetensorsHeader&&) noexcept = default;
  SafetensorsHeader& operator=(SafetensorsHeader&&) noexcept = default;
  SafetensorsHeader(const SafetensorsHeader&) = delete;
  SafetensorsHeader& operator=(const SafetensorsHeader&) = delete;

  std::uint64_t header_size = 0;  // N: bytes of JSON
  std::uint64_t data_size = 0;    // bytes after the header
  std::vector<TensorInfo> tensors;  // sorted by offset, i.e. in file order
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" entry

  std::uint64_t data_offset() const { return 8 + header_size; }
  const TensorInfo* find(std::string_view name) const;

  // Used by the parser once `tensors` is final.
  void build_index();

 private:
  std::unordered_map<std::string_view, std::size_t> by_name_;
};

// Checks the 8-byte length prefix against the limit and the file size; returns N.
std::uint64_t decode_header_length(std::span<const std::byte> prefix, std::uint64_t file_size,
                                   const std::string& file_label);

// Parses and validates the JSON header. `data_size` is the number of bytes after the header.
SafetensorsHeader parse_header_json(std::string_view json, std::uint64_t header_size, std::uint64_t data_size,
                                    const std::string& file_label);

// Validates a whole file held in memory (tests, fuzzing).
SafetensorsHeader parse_safetensors(std::span<const std::byte> file_bytes, const std::string& file_label);

// Reads and validates the header of a file on disk with pread; the data is not read.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path, const std::string& file_label);
// The same from an open file (the one its data will be read from).
SafetensorsHeader read_safetensors_header(const FileDescriptor& fd, const std::string& file_label);

}  // namespace vindex
