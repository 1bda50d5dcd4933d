// Defensive parser of GGUF headers (see vindex/format/gguf.hpp for the rules enforced).
#include "vindex/format/gguf.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace {

// ggml's type table: ids from the ggml_type enum (ggml/include/ggml.h), block sizes and block bytes
// from type_traits[] in ggml/src/ggml.c, whose type_size is sizeof(block_*) as asserted in
// ggml/src/ggml-common.h -- read in ggml-org/llama.cpp (ggml.c at 00bdaa105cb03380daf899b4fc9f026555745269,
// ggml-common.h at 01243c587feceaa5d6a6c2305535ef2f549c48b8). Ids 4, 5 (Q4_2, Q4_3), 31-33
// (Q4_0_4_4 ...) and 37-38 (IQ4_NL_4_8 ...) were removed from ggml and are unknown here. 36 was
// IQ4_NL_4_4 in ggml (removed) and is I2_S in bitnet.cpp's fork (microsoft/BitNet, its llama.cpp
// submodule Eddie-Wang1120/llama.cpp): 128 ternary values in 32 bytes, one float32 scale per tensor
// after the codes, so a tensor is n/4 + 32 bytes (that fork's ggml_nbytes). It is read only in files
// whose general.architecture is one of bitnet.cpp's (kBitnetCppArchitectures). The unit test checks
// this table against gguf-py's copy (GGML_QUANT_SIZES), whose Q8_1 entry (32, 40) predates ggml's
// half-precision block_q8_1 (36 bytes; Q8_1 is a dot-product intermediate, never in files).
constexpr std::uint32_t QK_K = 256;
constexpr GgmlTypeTraits kGgmlTypes[] = {
    {0, "F32", 1, 4},
    {1, "F16", 1, 2},
    {2, "Q4_0", 32, 2 + 32 / 2},
    {3, "Q4_1", 32, 2 * 2 + 32 / 2},
    {6, "Q5_0", 32, 2 + 4 + 32 / 2},
    {7, "Q5_1", 32, 2 * 2 + 4 + 32 / 2},
    {8, "Q8_0", 32, 2 + 32},
    {9, "Q8_1", 32, 2 * 2 + 32},
    {10, "Q2_K", QK_K, 2 * 2 + QK_K / 16 + QK_K / 4},
    {11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12},
    {12, "Q4_K", QK_K, 2 * 2 + 12 + QK_K / 2},
    {13, "Q5_K", QK_K, 2 * 2 + 12 + QK_K / 2 + QK_K / 8},
    {14, "Q6_K", QK_K, 2 + QK_K / 16 + 3 * QK_K / 4},
    {15, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    {16, "IQ2_XXS", QK_K, 2 + QK_K / 8 * 2},
    {17, "IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
    {18, "IQ3_XXS", QK_K, 2 + 3 * (QK_K / 8)},
    {19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16},
    {20, "IQ4_NL", 32, 2 + 32 / 2},
    {21, "IQ3_S", QK_K, 2 + 13 * (QK_K / 32) + QK_K / 64},
    {22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16},
    {23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2},
    {24, "I8", 1, 1},
    {25, "I16", 1, 2},
    {26, "I32", 1, 4},
    {27, "I64", 1, 8},
    {28, "F64", 1, 8},
    {29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    {30, "BF16", 1, 2},
    {34, "TQ1_0", QK_K, 2 + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5},
    {35, "TQ2_0", QK_K, 2 + QK_K / 4},
    {36, "I2_S", 128, 128 / 4},  // bitnet.cpp's; plus 32 bytes a tensor (see above)
    {39, "MXFP4", 32, 1 + 32 / 2},
    {40, "NVFP4", 64, 64 / 16 + 64 / 2},
    {41, "Q1_0", 128, 2 + 128 / 8},
    {42, "Q2_0", 64, 2 + 64 / 4},
};

constexpr std::string_view kValueTypeNames[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                                "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};

bool known_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufValueType::float64); }

// Fewest bytes one value of a type takes in the file (arrays: element type and count).
std::uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::uint16:
    case GgufValueType::int16: return 2;
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::float32: return 4;
    case GgufValueType::string: return 8;
    case GgufValueType::array: return 12;
    case GgufValueType::uint64:
    case GgufValueType::int64:
    case GgufValueType::float64: return 8;
  }
  return 1;
}

std::string describe_type(const GgufValue& v) {
  if (v.type != GgufValueType::array) return std::string(gguf_value_type_name(v.type));
  return fmt::format("ARRAY of {}", gguf_value_type_name(std::get<GgufArray>(v.value).element_type));
}

// Thrown by the cursor when the header runs past the bytes read so far but not past the file.
struct NeedMoreBytes {
  std::uint64_t bytes;
};

// Smallest header record sizes, for bounding the counts by the bytes left: a metadata entry is a
// key (length + at least one byte), a type and at least one byte of value; a tensor info a name,
// n_dims, a type and an offset.
constexpr std::uint64_t kMinMetadataEntryBytes = 8 + 1 + 4 + 1;
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;

class Cursor {
 public:
  Cursor(std::span<const std::byte> prefix, std::uint64_t file_size, const std::string& file)
      : prefix_(prefix), file_size_(file_size), file_(file) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return file_size_ - pos_; }
  const std::string& file() const { return file_; }
  // What is being read, for messages: "metadata key 'x'", "tensor info 3".
  std::string context;
  std::string tensor;  // the tensor whose info is being read (FormatError's tensor field)

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(file_, tensor, what); }

  void need(std::uint64_t n) {
    if (n > remaining())
      fail(fmt::format("the file ends inside {}: {} bytes needed at offset {}, the file has {} (truncated?)", context,
                       n, pos_, file_size_));
    if (pos_ + n > kMaxGgufHeaderBytes)
      fail(fmt::format("the header runs past the limit of {} bytes (at {})", kMaxGgufHeaderBytes, context));
    if (pos_ + n > prefix_.size()) throw NeedMoreBytes{pos_ + n};
  }

  template <typename T>
  T scalar() {
    need(sizeof(T));
    T v{};
    std::memcpy(&v, prefix_.data() + pos_, sizeof(T));  // little-endian host (see read_gguf_header)
    pos_ += sizeof(T);
    return v;
  }

  std::string bytes(std::uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(prefix_.data()) + pos_, n);
    pos_ += n;
    return s;
  }

  // A string whose length is checked against `max` and the bytes left before it is read.
  std::string string(std::uint64_t max, const char* what) {
    const std::uint64_t n = scalar<std::uint64_t>();
    if (n > max) fail(fmt::format("{} of {} bytes in {} exceeds the limit of {} bytes", what, n, context, max));
    return bytes(n);
  }

  // A key or tensor name: non-empty UTF-8 of at most kMaxGgufNameBytes.
  std::string name(const char* what) {
    std::string s = string(kMaxGgufNameBytes, what);
    if (s.empty()) fail(fmt::format("{} in {} is empty", what, context));
    std::size_t bad = 0;
    if (!is_valid_utf8(s, bad)) fail(fmt::format("{} in {} is not valid UTF-8 (byte {})", what, context, bad));
    return s;
  }

 private:
  std::span<const std::byte> prefix_;
  std::uint64_t file_size_;
  const std::string& file_;
  std::uint64_t pos_ = 0;
};

class HeaderParser {
 public:
  explicit HeaderParser(Cursor& in) : in_(in) {}

  GgufValue value(GgufValueType type, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case GgufValueType::uint8: v.value = std::uint64_t{in_.scalar<std::uint8_t>()}; break;
      case GgufValueType::int8: v.value = std::int64_t{in_.scalar<std::int8_t>()}; break;
      case GgufValueType::uint16: v.value = std::uint64_t{in_.scalar<std::uint16_t>()}; break;
      case GgufValueType::int16: v.value = std::int64_t{in_.scalar<std::int16_t>()}; break;
      case GgufValueType::uint32: v.value = std::uint64_t{in_.scalar<std::uint32_t>()}; break;
      case GgufValueType::int32: v.value = std::int64_t{in_.scalar<std::int32_t>()}; break;
      case GgufValueType::uint64: v.value = in_.scalar<std::uint64_t>(); break;
      case GgufValueType::int64: v.value = in_.scalar<std::int64_t>(); break;
      case GgufValueType::float32: v.value = double{in_.scalar<float>()}; break;
      case GgufValueType::float64: v.value = in_.scalar<double>(); break;
      case GgufValueType::boolean: {
        const std::uint8_t b = in_.scalar<std::uint8_t>();
        if (b > 1) in_.fail(fmt::format("BOOL value {} in {} is neither 0 nor 1", b, in_.context));
        v.value = b == 1;
        break;
      }
      case GgufValueType::string: v.value = in_.string(kMaxGgufStringBytes, "string"); break;
      case GgufValueType::array: v.value = array(depth + 1); break;
    }
    return v;
  }

 private:
  GgufArray array(int depth) {
    if (depth > kMaxGgufArrayDepth)
      in_.fail(fmt::format("arrays in {} are nested deeper than {} levels", in_.context, kMaxGgufArrayDepth));
    const std::uint32_t raw_type = in_.scalar<std::uint32_t>();
    if (!known_value_type(raw_type))
      in_.fail(fmt::format("{} is an array of unknown value type {}", in_.context, raw_type));
    GgufArray a;
    a.element_type = static_cast<GgufValueType>(raw_type);
    const std::uint64_t count = in_.scalar<std::uint64_t>();
    const std::uint64_t min_bytes = min_value_bytes(a.element_type);
    if (count > in_.remaining() / min_bytes)
      in_.fail(fmt::format("{} claims {} array elements of type {}, more than the {} bytes left in the file hold",
                           in_.context, count, gguf_value_type_name(a.element_type), in_.remaining()));
    if (count > kMaxGgufArrayElements - elements_)
      in_.fail(fmt::format("{} claims {} array elements: the header's arrays would hold more than {} elements",
                           in_.context, count, kMaxGgufArrayElements));
    elements_ += count;
    a.items.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, 4096)));
    for (std::uint64_t i = 0; i < count; ++i) a.items.push_back(value(a.element_type, depth));
    return a;
  }

  Cursor& in_;
  std::uint64_t elements_ = 0;
};

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, bool& overflow) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) overflow = true;
  return r;
}

void check_version(std::uint32_t version, Cursor& in) {
  if (version == 2 || version == 3) return;
  const std::uint32_t swapped = __builtin_bswap32(version);
  if (swapped >= 1 && swapped <= 3)
    in.fail(
        fmt::format("a big-endian GGUF file (version field 0x{:08x}, version {} byte-swapped): only "
                    "little-endian GGUF files are read",
                    version, swapped));
  if (version == 1) in.fail("GGUF version 1 (before August 2023) is not supported: only versions 2 and 3 are read");
  in.fail(fmt::format("unsupported GGUF version {}: only versions 2 and 3 are read", version));
}

std::uint32_t alignment_of(const GgufMetadata& metadata, Cursor& in) {
  const GgufValue* v = metadata.find("general.alignment");
  if (v == nullptr) return kGgufDefaultAlignment;
  if (v->type != GgufValueType::uint32)
    in.fail(fmt::format("metadata key 'general.alignment' holds {}, expected UINT32", describe_type(*v)));
  const auto a = static_cast<std::uint32_t>(std::get<std::uint64_t>(v->value));
  if (a == 0 || !std::has_single_bit(a)) in.fail(fmt::format("general.alignment {} is not a power of two", a));
  return a;
}

std::optional<GgufSplitInfo> split_of(const GgufMetadata& metadata, Cursor& in) {
  const bool any = metadata.find("split.no") || metadata.find("split.count") || metadata.find("split.tensors.count");
  if (!any) return std::nullopt;
  for (const char* key : {"split.no", "split.count", "split.tensors.count"})
    if (!metadata.find(key))
      in.fail(
          fmt::format("metadata has split keys but no '{}' (split.no, split.count and split.tensors.count "
                      "go together)",
                      key));
  const std::uint64_t no = *metadata.get_uint("split.no");
  const std::uint64_t count = *metadata.get_uint("split.count");
  const std::uint64_t tensors = *metadata.get_uint("split.tensors.count");
  if (count < 1 || count > std::numeric_limits<std::uint16_t>::max())
    in.fail(fmt::format("split.count {} is not between 1 and 65535", count));
  if (no >= count) in.fail(fmt::format("split.no {} is not below split.count {}", no, count));
  if (tensors > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
    in.fail(fmt::format("split.tensors.count {} exceeds the largest INT32", tensors));
  return GgufSplitInfo{static_cast<std::uint16_t>(no), static_cast<std::uint16_t>(count),
                       static_cast<std::uint32_t>(tensors)};
}

// bitnet.cpp's architecture names (its llama.cpp fork's llm_arch names), in whose files type 36 is I2_S.
constexpr std::string_view kBitnetCppArchitectures[] = {"bitnet", "bitnet-b1.58", "bitnet-25"};

bool is_bitnet_cpp_file(const GgufMetadata& metadata) {
  const std::optional<std::string> arch = metadata.get_string("general.architecture");
  return arch && std::find(std::begin(kBitnetCppArchitectures), std::end(kBitnetCppArchitectures), *arch) !=
                     std::end(kBitnetCppArchitectures);
}

GgufTensorInfo tensor_info(Cursor& in, std::uint64_t index, std::uint32_t alignment, bool i2s_allowed,
                           std::uint64_t& relative_offset) {
  GgufTensorInfo t;
  in.context = fmt::format("tensor info {}", index);
  in.tensor.clear();
  t.name = in.name("tensor name");
  in.tensor = t.name;
  in.context = fmt::format("tensor info {} ('{}')", index, t.name);
  const std::uint32_t n_dims = in.scalar<std::uint32_t>();
  if (n_dims > kMaxGgufDims) in.fail(fmt::format("{} dimensions, more than ggml's {}", n_dims, kMaxGgufDims));
  bool overflow = false;
  std::uint64_t elements = 1;
  for (std::uint32_t d = 0; d < n_dims; ++d) {
    t.dims.push_back(in.scalar<std::uint64_t>());
    if (t.dims.back() == 0) in.fail(fmt::format("dimension {} is 0", d));
    elements = checked_mul(elements, t.dims.back(), overflow);
  }
  if (overflow || elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    in.fail(fmt::format("element count of dims [{}] overflows", fmt::join(t.dims, ", ")));
  t.num_elements = elements;
  t.type = in.scalar<std::uint32_t>();
  const GgmlTypeTraits* traits = ggml_type_traits(t.type);
  if (t.type == kGgmlTypeI2S && !i2s_allowed)
    in.fail(fmt::format("unknown ggml type id {} (bitnet.cpp's I2_S, read only when general.architecture is one "
                        "of bitnet.cpp's: {})",
                        t.type, fmt::join(kBitnetCppArchitectures, ", ")));
  if (traits == nullptr) in.fail(fmt::format("unknown ggml type id {}", t.type));
  t.type_name = std::string(traits->name);
  const std::uint64_t row = t.dims.empty() ? 1 : t.dims[0];
  if (row % traits->block_size != 0)
    in.fail(fmt::format("rows of {} elements (dims [{}]) are not a whole number of {} blocks of {}", row,
                        fmt::join(t.dims, ", "), t.type_name, traits->block_size));
  t.byte_size = checked_mul(elements / traits->block_size, traits->type_size, overflow);
  if (t.type == kGgmlTypeI2S) t.byte_size += kI2sTrailerBytes;  // the tensor's scale, padded
  if (overflow) in.fail(fmt::format("byte size of dims [{}] of {} overflows", fmt::join(t.dims, ", "), t.type_name));
  relative_offset = in.scalar<std::uint64_t>();
  if (relative_offset % alignment != 0)
    in.fail(fmt::format("offset {} is not a multiple of the alignment {}", relative_offset, alignment));
  return t;
}

GgufHeader parse(Cursor& in) {
  GgufHeader h;
  h.file_size = in.remaining();
  in.context = "the magic";
  if (h.file_size < 4 || in.bytes(4) != "GGUF") in.fail("not a GGUF file: it does not start with the magic 'GGUF'");
  in.context = "the version";
  h.version = in.scalar<std::uint32_t>();
  check_version(h.version, in);

  in.context = "the counts";
  const std::uint64_t tensor_count = in.scalar<std::uint64_t>();
  const std::uint64_t kv_count = in.scalar<std::uint64_t>();
  if (tensor_count > kMaxGgufTensors)
    in.fail(fmt::format("tensor count {} exceeds the limit of {}", tensor_count, kMaxGgufTensors));
  if (kv_count > kMaxGgufMetadataEntries)
    in.fail(fmt::format("metadata count {} exceeds the limit of {}", kv_count, kMaxGgufMetadataEntries));
  if (tensor_count * kMinTensorInfoBytes + kv_count * kMinMetadataEntryBytes > in.remaining())
    in.fail(fmt::format("{} tensor infos and {} metadata entries cannot fit in the {} bytes left in the file",
                        tensor_count, kv_count, in.remaining()));

  h.metadata.set_file_label(in.file());
  HeaderParser values(in);
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    in.context = fmt::format("metadata entry {}", i);
    std::string key = in.name("key");
    in.context = fmt::format("metadata key '{}'", key);
    const std::uint32_t raw_type = in.scalar<std::uint32_t>();
    if (!known_value_type(raw_type)) in.fail(fmt::format("{} has unknown value type {}", in.context, raw_type));
    GgufValue v = values.value(static_cast<GgufValueType>(raw_type), 0);
    if (!h.metadata.add(key, std::move(v))) in.fail(fmt::format("duplicate metadata key '{}'", key));
  }
  h.alignment = alignment_of(h.metadata, in);
  h.split = split_of(h.metadata, in);

  const bool i2s_allowed = is_bitnet_cpp_file(h.metadata);
  std::vector<std::uint64_t> relative;  // offsets from the start of the data section
  std::unordered_set<std::string> names;
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    h.tensors.push_back(tensor_info(in, i, h.alignment, i2s_allowed, relative.emplace_back()));
    if (!names.insert(h.tensors.back().name).second) in.fail("duplicate tensor name");
  }
  in.tensor.clear();
  h.header_size = in.pos();

  // The data section starts at the header's end rounded up to the alignment.
  const std::uint64_t pad = (h.alignment - h.header_size % h.alignment) % h.alignment;
  h.data_offset = h.header_size + pad;  // header_size <= kMaxGgufHeaderBytes: no overflow
  if (!h.tensors.empty() && h.data_offset > h.file_size)
    in.fail(
        fmt::format("the data section would start at {} (the header's {} bytes aligned to {}), past the end of "
                    "the file ({} bytes)",
                    h.data_offset, h.header_size, h.alignment, h.file_size));
  const std::uint64_t data_size = h.tensors.empty() ? 0 : h.file_size - h.data_offset;
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    GgufTensorInfo& t = h.tensors[i];
    if (relative[i] > data_size || t.byte_size > data_size - relative[i])
      throw FormatError(in.file(), t.name,
                        fmt::format("{} bytes at data offset {} run past the {} bytes of the data section (truncated?)",
                                    t.byte_size, relative[i], data_size));
    t.offset = h.data_offset + relative[i];
  }
  // No two tensors may share a byte.
  std::vector<std::size_t> order(h.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return h.tensors[a].offset != h.tensors[b].offset ? h.tensors[a].offset < h.tensors[b].offset : a < b;
  });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = h.tensors[order[k - 1]];
    const GgufTensorInfo& t = h.tensors[order[k]];
    if (t.offset < prev.offset + prev.byte_size)
      throw FormatError(in.file(), t.name,
                        fmt::format("bytes [{}, {}) overlap tensor '{}' at [{}, {})", t.offset, t.offset + t.byte_size,
                                    prev.name, prev.offset, prev.offset + prev.byte_size));
  }
  h.build_index();
  return h;
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  const auto i = static_cast<std::uint32_t>(type);
  return i < std::size(kValueTypeNames) ? kValueTypeNames[i] : std::string_view("?");
}

const GgmlTypeTraits* ggml_type_traits(std::uint32_t id) {
  for (const GgmlTypeTraits& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

// --- metadata -------------------------------------------------------------------------------------

const GgufValue* GgufMetadata::find(std::string_view key) const {
  const auto it = by_key_.find(std::string(key));
  return it == by_key_.end() ? nullptr : &entries_[it->second].second;
}

bool GgufMetadata::add(std::string key, GgufValue value) {
  if (by_key_.count(key)) return false;
  by_key_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
  return true;
}

void GgufMetadata::type_error(std::string_view key, const GgufValue& v, const char* expected) const {
  throw FormatError(file_, "", fmt::format("metadata key '{}' holds {}, expected {}", key, describe_type(v), expected));
}

std::optional<std::string> GgufMetadata::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::string) type_error(key, *v, "a STRING");
  return std::get<std::string>(v->value);
}

std::optional<std::uint64_t> GgufMetadata::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* u = std::get_if<std::uint64_t>(&v->value)) return *u;
  if (const auto* i = std::get_if<std::int64_t>(&v->value)) {
    if (*i < 0)
      throw FormatError(
          file_, "",
          fmt::format("metadata key '{}' holds {} {}, expected a non-negative integer", key, describe_type(*v), *i));
    return static_cast<std::uint64_t>(*i);
  }
  type_error(key, *v, "an integer");
}

std::optional<std::int64_t> GgufMetadata::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* i = std::get_if<std::int64_t>(&v->value)) return *i;
  if (const auto* u = std::get_if<std::uint64_t>(&v->value)) {
    if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw FormatError(
          file_, "",
          fmt::format("metadata key '{}' holds {} {}, which exceeds the largest INT64", key, describe_type(*v), *u));
    return static_cast<std::int64_t>(*u);
  }
  type_error(key, *v, "an integer");
}

std::optional<double> GgufMetadata::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::float32 && v->type != GgufValueType::float64) type_error(key, *v, "FLOAT32 or FLOAT64");
  return std::get<double>(v->value);
}

std::optional<bool> GgufMetadata::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::boolean) type_error(key, *v, "a BOOL");
  return std::get<bool>(v->value);
}

const GgufArray* GgufMetadata::get_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::array) type_error(key, *v, "an ARRAY");
  return &std::get<GgufArray>(v->value);
}

std::optional<std::vector<std::string>> GgufMetadata::get_array_of_strings(std::string_view key) const {
  const GgufArray* a = get_array(key);
  if (!a) return std::nullopt;
  if (a->element_type != GgufValueType::string) type_error(key, *find(key), "an ARRAY of STRING");
  std::vector<std::string> out;
  out.reserve(a->items.size());
  for (const GgufValue& item : a->items) out.push_back(std::get<std::string>(item.value));
  return out;
}

// --- tensors and header ---------------------------------------------------------------------------

std::array<std::uint64_t, 2> GgufTensorInfo::rows_cols() const {
  VINDEX_ASSERT(dims.size() == 2);
  return {dims[1], dims[0]};
}

const GgufTensorInfo* GgufHeader::find(std::string_view name) const {
  const auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors[it->second];
}

void GgufHeader::build_index() {
  by_name_.clear();
  by_name_.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) by_name_.emplace(tensors[i].name, i);
}

bool has_gguf_magic(std::span<const std::byte> prefix) {
  return prefix.size() >= 4 && std::memcmp(prefix.data(), "GGUF", 4) == 0;
}

std::optional<GgufHeader> parse_gguf_header_prefix(std::span<const std::byte> prefix, std::uint64_t file_size,
                                                   const std::string& file_label, std::uint64_t& bytes_needed) {
  static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");
  VINDEX_ASSERT(prefix.size() <= file_size);
  Cursor in(prefix, file_size, file_label);
  try {
    return parse(in);
  } catch (const NeedMoreBytes& more) {
    bytes_needed = more.bytes;
    return std::nullopt;
  }
}

GgufHeader parse_gguf(std::span<const std::byte> file_bytes, const std::string& file_label) {
  std::uint64_t needed = 0;
  std::optional<GgufHeader> h = parse_gguf_header_prefix(file_bytes, file_bytes.size(), file_label, needed);
  VINDEX_ASSERT(h.has_value());  // the whole file was given
  return std::move(*h);
}

GgufHeader read_gguf_header(const std::filesystem::path& path, const std::string& file_label) {
  return read_gguf_header(FileDescriptor::open_read(path), file_label);
}

GgufHeader read_gguf_header(const FileDescriptor& fd, const std::string& file_label) {
  const std::uint64_t file_size = fd.size();
  const std::uint64_t limit = std::min(file_size, kMaxGgufHeaderBytes);
  // Most headers fit in the first MiB; one with a large vocabulary is read again with more.
  std::vector<std::byte> buffer;
  std::uint64_t have = 0;
  std::uint64_t want = std::min<std::uint64_t>(limit, 1 << 20);
  for (;;) {
    buffer.resize(static_cast<std::size_t>(want));
    fd.read_exact(buffer.data() + have, want - have, have);
    have = want;
    std::uint64_t needed = 0;
    std::optional<GgufHeader> h = parse_gguf_header_prefix(buffer, file_size, file_label, needed);
    if (h) return std::move(*h);
    VINDEX_ASSERT(needed > have && needed <= limit);
    want = std::min(limit, std::max(needed, 2 * have));
  }
}

std::vector<std::size_t> check_gguf_splits(std::span<const GgufHeader* const> headers,
                                           std::span<const std::string> labels) {
  VINDEX_ASSERT(!headers.empty() && headers.size() == labels.size());
  if (headers.size() == 1 && !headers[0]->split) return {0};
  std::vector<std::size_t> order(headers.size(), headers.size());
  const GgufHeader& first = *headers[0];
  std::uint64_t tensors = 0;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const GgufHeader& h = *headers[i];
    if (!h.split)
      throw FormatError(
          labels[i], "",
          fmt::format("has no split.no/split.count metadata, but is one of {} split files", headers.size()));
    if (h.split->count != headers.size())
      throw FormatError(
          labels[i], "",
          fmt::format("split.count is {}, but {} split files were given", h.split->count, headers.size()));
    if (first.split && h.split->tensors_count != first.split->tensors_count)
      throw FormatError(labels[i], "",
                        fmt::format("split.tensors.count is {}, but {} in {}", h.split->tensors_count,
                                    first.split->tensors_count, labels[0]));
    if (order[h.split->no] != headers.size())
      throw FormatError(labels[i], "",
                        fmt::format("split.no {} is also that of {}", h.split->no, labels[order[h.split->no]]));
    order[h.split->no] = i;
    tensors += h.tensors.size();
  }
  if (tensors != first.split->tensors_count)
    throw FormatError(labels[0], "",
                      fmt::format("split.tensors.count is {}, but the {} splits hold {} tensors",
                                  first.split->tensors_count, headers.size(), tensors));
  std::unordered_map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < headers.size(); ++i)
    for (const GgufTensorInfo& t : headers[i]->tensors)
      if (const auto [it, fresh] = seen.emplace(t.name, i); !fresh)
        throw FormatError(labels[i], t.name, fmt::format("the tensor is also in {}", labels[it->second]));
  return order;
}

}  // namespace vindex
