// The GGUF container (llama.cpp's model file): "GGUF", a version, the tensor and metadata counts,
// typed metadata key/value pairs, one info record per tensor (name, dims, ggml type, offset), then,
// from the header's end rounded up to `general.alignment`, the tensors' bytes. Only the header is
// read here; what the tensors' blocks mean (dequantization) and what the model is (families) are
// elsewhere. Parsed as defensively as the safetensors header: every count and length bounded by
// the bytes left in the file and by a sane maximum, sizes overflow-checked, known value and tensor
// types only, no duplicate keys or tensor names, tensors aligned, inside the data section and not
// overlapping. Versions 2 and 3 (the same little-endian layout) are read; version 1 and big-endian
// files (GGUF v3 allows them) are refused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "vindex/base/file_descriptor.hpp"

namespace vindex {

// Limits on what a header may claim. Real headers are far below them (a 150k-token vocabulary with
// its merges is a few MB, a few hundred thousand array elements).
inline constexpr std::uint64_t kMaxGgufHeaderBytes = 256ull << 20;   // magic to the last tensor info
inline constexpr std::uint64_t kMaxGgufStringBytes = 16ull << 20;    // one string value
inline constexpr std::uint64_t kMaxGgufNameBytes = 65535;            // a key or a tensor name (GGUF spec: keys < 2^16)
inline constexpr std::uint64_t kMaxGgufArrayElements = 16ull << 20;  // all array elements of a header together
inline constexpr int kMaxGgufArrayDepth = 4;                         // arrays of arrays of ...
inline constexpr std::uint64_t kMaxGgufTensors = 1ull << 20;
inline constexpr std::uint64_t kMaxGgufMetadataEntries = 1ull << 20;
inline constexpr std::uint32_t kMaxGgufDims = 4;  // GGML_MAX_DIMS
inline constexpr std::uint32_t kGgufDefaultAlignment = 32;

// The 13 metadata value types, with their ids in the file.
enum class GgufValueType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};
// "UINT8", ..., "FLOAT64" (gguf-py's names).
std::string_view gguf_value_type_name(GgufValueType type);

struct GgufValue;

// An array: its element type and elements (each of that type; nested arrays may differ in length).
struct GgufArray {
  GgufValueType element_type{};
  std::vector<GgufValue> items;
};

// One metadata value. Integers of every width are kept as uint64 (unsigned types) or int64 (signed),
// floats as double; `type` says what the file holds.
struct GgufValue {
  GgufValueType type{};
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, GgufArray> value;
};

// The metadata in file order, with typed lookups. A getter returns nullopt for an absent key and
// throws a FormatError naming the file and the key when the value has another type.
class GgufMetadata {
 public:
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }
  const GgufValue* find(std::string_view key) const;

  std::optional<std::string> get_string(std::string_view key) const;
  // Any integer type whose value fits (a negative signed value is a type error for get_uint).
  std::optional<std::uint64_t> get_uint(std::string_view key) const;
  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // FLOAT32 or FLOAT64
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_array_of_strings(std::string_view key) const;
  const GgufArray* get_array(std::string_view key) const;  // any element type

  // Used by the parser: false when the key is already present.
  bool add(std::string key, GgufValue value);
  void set_file_label(std::string label) { file_ = std::move(label); }

 private:
  [[noreturn]] void type_error(std::string_view key, const GgufValue& v, const char* expected) const;

  std::string file_;
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::unordered_map<std::string, std::size_t> by_key_;
};

// ggml's tensor types as far as the header needs them: block size (elements) and type size (bytes
// per block). Ids and sizes are llama.cpp's (see gguf.cpp).
struct GgmlTypeTraits {
  std::uint32_t id = 0;
  std::string_view name;  // "Q4_K" (GGML_TYPE_Q4_K without the prefix; gguf-py's names)
  std::uint32_t block_size = 0;
  std::uint32_t type_size = 0;
};
// nullptr for an id that is unknown, deprecated or removed.
const GgmlTypeTraits* ggml_type_traits(std::uint32_t id);

// bitnet.cpp's I2_S (ggml type 36 in its fork): blocks of 128 ternary 2-bit codes in 32 bytes; the
// tensor's float32 scale follows its n/4 bytes of codes, in a trailer of 32 bytes.
constexpr std::uint32_t kGgmlTypeI2S = 36;
constexpr std::uint64_t kI2sTrailerBytes = 32;

struct GgufTensorInfo {
  std::string name;
  std::uint32_t type = 0;           // ggml type id
  std::string type_name;            // "Q4_K"
  std::vector<std::uint64_t> dims;  // as stored: innermost (contiguous) first; ggml's ne[0], ne[1], ...
  std::uint64_t offset = 0;         // byte offset of the first byte from the start of the file
  std::uint64_t byte_size = 0;      // elements / block size * type size
  std::uint64_t num_elements = 0;

  bool is_matrix() const { return dims.size() == 2; }
  // [rows, cols] = [dims[1], dims[0]] of a 2-D tensor (a matrix of `rows` rows of `cols` contiguous
  // elements, as numpy and safetensors would give its shape).
  std::array<std::uint64_t, 2> rows_cols() const;
  // The dims outermost first (numpy's / safetensors' shape).
  std::vector<std::uint64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

// split.no / split.count / split.tensors.count, written to every split of a model by llama.cpp's
// gguf-split and gguf-py (uint16, uint16, int32).
struct GgufSplitInfo {
  std::uint16_t no = 0;             // from 0
  std::uint16_t count = 0;          // >= 1
  std::uint32_t tensors_count = 0;  // tensors of the whole model
};

struct GgufHeader {
  std::uint32_t version = 0;
  std::uint32_t alignment = kGgufDefaultAlignment;
  std::uint64_t header_size = 0;  // bytes from the magic to the end of the last tensor info
  std::uint64_t data_offset = 0;  // header_size rounded up to the alignment
  std::uint64_t file_size = 0;
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;  // in the order of the header (llama.cpp's data order)
  std::optional<GgufSplitInfo> split;

  const GgufTensorInfo* find(std::string_view name) const;
  void build_index();  // used by the parser once `tensors` is final

 private:
  std::unordered_map<std::string, std::size_t> by_name_;
};

// True when `prefix` starts with the GGUF magic.
bool has_gguf_magic(std::span<const std::byte> prefix);

// Parses the header from the first prefix.size() bytes of a file of `file_size` bytes. Returns
// nullopt when the header runs past the prefix but the file is long enough to hold more; then
// `bytes_needed` (> prefix.size(), <= min(file_size, kMaxGgufHeaderBytes)) is how many the next
// attempt needs at least. Everything else wrong is a FormatError naming `file_label`.
std::optional<GgufHeader> parse_gguf_header_prefix(std::span<const std::byte> prefix, std::uint64_t file_size,
                                                   const std::string& file_label, std::uint64_t& bytes_needed);

// Validates a whole file held in memory (tests, fuzzing).
GgufHeader parse_gguf(std::span<const std::byte> file_bytes, const std::string& file_label);

// Reads and validates the header of a file on disk with pread (the header region only, read in
// growing steps up to kMaxGgufHeaderBytes); the tensors' bytes are not read.
GgufHeader read_gguf_header(const std::filesystem::path& path, const std::string& file_label);
GgufHeader read_gguf_header(const FileDescriptor& fd, const std::string& file_label);

// Checks that the headers of split files form one model: each has split info with the same count,
// every split.no from 0 to count-1 exactly once, split.tensors.count equal in all and to the
// tensors they hold together, no tensor name in two splits. Returns the headers' indices ordered by
// split.no. `labels` names the files for messages (same length as `headers`).
std::vector<std::size_t> check_gguf_splits(std::span<const GgufHeader* const> headers,
                                           std::span<const std::string> labels);

}  // namespace vindex
