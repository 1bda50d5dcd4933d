// The GGUF header parser against files written by llama.cpp's gguf-py (tests/fixtures/gguf, with
// what gguf-py's GGUFReader reports for each in reference.json; tools/fixtures/make_gguf_fixtures.py)
// and against one malformed or hostile header per rule, built byte by byte here.
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/gguf.hpp"

using namespace vindex;
using vindex_test::contains;

namespace {

std::vector<std::byte> read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// Appends by resize and memcpy: GCC 12 at -O3 warns falsely (-Wstringop-overflow) about
// vector::insert of a range into a vector it believes empty.
void append(std::vector<std::byte>& out, const void* data, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  if (n != 0) std::memcpy(out.data() + at, data, n);
}

// Little-endian GGUF writing, for headers no correct writer would produce.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    append(out, &v, sizeof(T));
    return *this;
  }
  Bytes& u32(std::uint32_t v) { return put(v); }
  Bytes& u64(std::uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    append(out, s.data(), s.size());
    return *this;
  }
  std::vector<std::byte> out;
};

constexpr std::uint32_t kU8 = 0, kU32 = 4, kI32 = 5, kBool = 7, kString = 8, kArray = 9, kU64 = 10;
constexpr std::uint32_t kF32 = 0, kQ4_0 = 2;

// A GGUF file: header, padding to `alignment`, then `data_bytes` zero bytes.
struct Builder {
  std::uint32_t version = 3;
  std::uint32_t alignment = 32;  // used for padding only; say it in metadata with kv_u32
  Bytes kvs, infos;
  std::uint64_t n_kv = 0, n_tensors = 0;
  std::optional<std::uint64_t> tensor_count, kv_count;  // override the counts written
  std::uint64_t data_bytes = 0;

  Bytes& kv(std::string_view key, std::uint32_t type) {
    ++n_kv;
    return kvs.str(key).u32(type);
  }
  Builder& kv_u32(std::string_view key, std::uint32_t v) {
    kv(key, kU32).u32(v);
    return *this;
  }
  Builder& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset) {
    ++n_tensors;
    infos.str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (std::uint64_t d : dims) infos.u64(d);
    infos.u32(type).u64(offset);
    return *this;
  }
  std::vector<std::byte> bytes() const {
    Bytes b;
    append(b.out, "GGUF", 4);
    b.u32(version).u64(tensor_count.value_or(n_tensors)).u64(kv_count.value_or(n_kv));
    append(b.out, kvs.out.data(), kvs.out.size());
    append(b.out, infos.out.data(), infos.out.size());
    while (b.out.size() % alignment != 0) b.out.push_back(std::byte{0});
    b.out.resize(b.out.size() + data_bytes);
    return b.out;
  }
};

// Two F32 tensors of 4 x 2, back to back: a valid file the hostile cases start from.
Builder two_tensors() {
  Builder b;
  b.kv(std::string_view("general.architecture"), kString).str("llama");
  b.tensor("a", {4, 2}, kF32, 0).tensor("b", {4, 2}, kF32, 32);
  b.data_bytes = 64;
  return b;
}

void require_format_error(const std::vector<std::byte>& bytes, const std::string& expected_text) {
  REQUIRE_THROWS_AS(parse_gguf(bytes, "model.gguf"), FormatError);
  REQUIRE_THROWS_WITH(parse_gguf(bytes, "model.gguf"), contains("model.gguf") && contains(expected_text));
}

// A metadata value as gguf-py's ReaderField.types and contents() give it: the type names of the
// value and, for arrays, of the first element's; arrays of arrays flattened.
nlohmann::json reader_types(const GgufValue& v) {
  nlohmann::json types = nlohmann::json::array({std::string(gguf_value_type_name(v.type))});
  if (v.type == GgufValueType::array) {
    const GgufArray& a = std::get<GgufArray>(v.value);
    if (a.items.empty()) {
      types.push_back(std::string(gguf_value_type_name(a.element_type)));
    } else {
      for (const auto& t : reader_types(a.items[0])) types.push_back(t);
    }
  }
  return types;
}

void flatten(const GgufValue& v, nlohmann::json& out) {
  if (const auto* a = std::get_if<GgufArray>(&v.value)) {
    for (const GgufValue& item : a->items) flatten(item, out);
    return;
  }
  std::visit(
      [&](const auto& x) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, GgufArray>) out.push_back(x);
      },
      v.value);
}

nlohmann::json reader_contents(const GgufValue& v) {
  nlohmann::json values = nlohmann::json::array();
  flatten(v, values);
  return v.type == GgufValueType::array ? values : values[0];
}

void require_matches_reference(const GgufHeader& h, const nlohmann::json& ref) {
  REQUIRE(h.version == ref.at("version").get<std::uint32_t>());
  REQUIRE(h.alignment == ref.at("alignment").get<std::uint32_t>());
  REQUIRE(h.data_offset == ref.at("data_offset").get<std::uint64_t>());
  REQUIRE(h.file_size == ref.at("file_size").get<std::uint64_t>());
  const auto& metadata = ref.at("metadata");
  REQUIRE(h.metadata.size() == metadata.size());
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    const auto& [key, value] = h.metadata.entries()[i];
    INFO("metadata key " << key);
    REQUIRE(key == metadata[i].at("key").get<std::string>());
    REQUIRE(reader_types(value) == metadata[i].at("types"));
    REQUIRE(reader_contents(value) == metadata[i].at("value"));
  }
  const auto& tensors = ref.at("tensors");
  REQUIRE(h.tensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = h.tensors[i];
    INFO("tensor " << t.name);
    REQUIRE(t.name == tensors[i].at("name").get<std::string>());
    REQUIRE(t.type_name == tensors[i].at("type").get<std::string>());
    REQUIRE(t.type == tensors[i].at("type_id").get<std::uint32_t>());
    REQUIRE(t.dims == tensors[i].at("dims").get<std::vector<std::uint64_t>>());
    REQUIRE(t.num_elements == tensors[i].at("n_elements").get<std::uint64_t>());
    REQUIRE(t.byte_size == tensors[i].at("n_bytes").get<std::uint64_t>());
    REQUIRE(t.offset == tensors[i].at("offset").get<std::uint64_t>());
    REQUIRE(h.find(t.name) == &t);
  }
}

nlohmann::json reference() { return vindex_test::read_json(vindex_test::fixture("gguf/reference.json")); }

std::vector<GgufHeader> split_headers() {
  std::vector<GgufHeader> headers;
  for (int i = 1; i <= 3; ++i) {
    const auto path = vindex_test::fixture(fmt::format("gguf/split-0000{}-of-00003.gguf", i));
    headers.push_back(read_gguf_header(path, path.filename().string()));
  }
  return headers;
}

}  // namespace

TEST_CASE("every file gguf-py wrote parses as gguf-py's GGUFReader reads it", "[gguf][fixtures]") {
  const nlohmann::json ref = reference();
  int files = 0;
  for (const auto& [name, expected] : ref.at("files").items()) {
    if (expected.at("byte_order") != "I") continue;  // the big-endian file: refused, below
    INFO("fixture " << name);
    const auto path = vindex_test::fixture("gguf/" + name);
    require_matches_reference(read_gguf_header(path, name), expected);
    require_matches_reference(parse_gguf(read_all(path), name), expected);
    ++files;
  }
  REQUIRE(files == 5);
}

TEST_CASE("the ggml type table agrees with gguf-py's copy of it", "[gguf]") {
  const nlohmann::json types = reference().at("ggml_types");
  for (std::uint32_t id = 0; id < 64; ++id) {
    INFO("ggml type id " << id);
    const GgmlTypeTraits* t = ggml_type_traits(id);
    const std::string key = std::to_string(id);
    if (!types.contains(key)) {
      // Q2_0 (42) is newer than gguf 0.19.0, I2_S (36) bitnet.cpp's; the other ids are unused or
      // removed from ggml.
      REQUIRE((t == nullptr) == (id != 42 && id != 36));
      continue;
    }
    REQUIRE(t != nullptr);
    REQUIRE(t->id == id);
    REQUIRE(t->name == types[key][0].get<std::string>());
    REQUIRE(t->block_size == types[key][1].get<std::uint32_t>());
    if (t->name == "Q8_1") {
      // gguf-py still has the float32 block_q8_1 (40 bytes); ggml's is two halves and 32 quants.
      REQUIRE(types[key][2].get<std::uint32_t>() == 40);
      REQUIRE(t->type_size == 36);
    } else {
      REQUIRE(t->type_size == types[key][2].get<std::uint32_t>());
    }
  }
}

TEST_CASE("metadata getters are typed and name the key", "[gguf]") {
  const auto path = vindex_test::fixture("gguf/mixed_v3.gguf");
  const GgufHeader h = read_gguf_header(path, "mixed_v3.gguf");
  const GgufMetadata& m = h.metadata;
  REQUIRE(m.get_string("general.architecture") == "llama");
  REQUIRE(m.get_uint("test.uint32") == 4000000000u);
  REQUIRE(m.get_uint("test.uint64") == 18000000000000000000u);
  REQUIRE(m.get_int("test.int8") == -100);
  REQUIRE(m.get_int("test.int64") == -9000000000000000000);
  REQUIRE(m.get_int("test.uint16") == 65000);
  REQUIRE(m.get_float("test.float32") == static_cast<double>(0.1f));
  REQUIRE(m.get_float("test.float64") == -1.0e-300);
  REQUIRE(m.get_bool("test.bool_true") == true);
  REQUIRE(m.get_array_of_strings("test.array_of_strings") ==
          std::vector<std::string>{"<unk>", "<s>", "</s>", "\xe2\x96\x81the", ""});
  REQUIRE(m.get_array("test.array_of_arrays")->items.size() == 2);
  REQUIRE_FALSE(m.get_string("no.such.key").has_value());
  REQUIRE(m.find("no.such.key") == nullptr);

  REQUIRE_THROWS_AS(m.get_string("test.uint8"), FormatError);
  REQUIRE_THROWS_WITH(m.get_string("test.uint8"),
                      contains("mixed_v3.gguf") && contains("'test.uint8' holds UINT8, expected a STRING"));
  REQUIRE_THROWS_WITH(m.get_uint("test.int8"), contains("'test.int8' holds INT8 -100, expected a non-negative"));
  REQUIRE_THROWS_WITH(m.get_int("test.uint64"), contains("'test.uint64'") && contains("exceeds the largest INT64"));
  REQUIRE_THROWS_WITH(m.get_float("test.int32"), contains("'test.int32' holds INT32, expected FLOAT32 or FLOAT64"));
  REQUIRE_THROWS_WITH(m.get_array_of_strings("test.array_of_int32"),
                      contains("'test.array_of_int32' holds ARRAY of INT32, expected an ARRAY of STRING"));
  REQUIRE_THROWS_WITH(m.get_uint("test.string"), contains("'test.string' holds STRING, expected an integer"));
}

TEST_CASE("tensor infos: dims inner-first, rows and columns, offsets from the file's start", "[gguf]") {
  const GgufHeader h = read_gguf_header(vindex_test::fixture("gguf/mixed_v3.gguf"), "mixed_v3.gguf");
  REQUIRE(h.alignment == 64);
  REQUIRE(h.data_offset % 64 == 0);
  REQUIRE(h.data_offset >= h.header_size);
  REQUIRE(h.data_offset - h.header_size < 64);
  const GgufTensorInfo* gate = h.find("blk.0.ffn_gate.weight");  // numpy (4, 64) quantized to Q8_0
  REQUIRE(gate != nullptr);
  REQUIRE(gate->type_name == "Q8_0");
  REQUIRE(gate->is_matrix());
  REQUIRE(gate->rows_cols() == std::array<std::uint64_t, 2>{4, 64});
  REQUIRE(gate->shape() == std::vector<std::uint64_t>{4, 64});
  REQUIRE(gate->byte_size == 4 * 2 * 34);
  const GgufTensorInfo* experts = h.find("blk.0.ffn_gate_exps.weight");  // numpy (2, 3, 4)
  REQUIRE(experts->dims == std::vector<std::uint64_t>{4, 3, 2});
  REQUIRE(experts->shape() == std::vector<std::uint64_t>{2, 3, 4});
  REQUIRE_FALSE(experts->is_matrix());
  REQUIRE(h.find("nothing") == nullptr);
  REQUIRE_FALSE(h.split.has_value());
}

TEST_CASE("split files: split keys are exposed and the splits checked to form one model", "[gguf][split]") {
  std::vector<GgufHeader> h = split_headers();
  REQUIRE(h[0].split.has_value());
  REQUIRE(h[1].split->no == 1);
  REQUIRE(h[2].split->count == 3);
  REQUIRE(h[0].split->tensors_count == 5);
  const std::vector<std::string> labels{"s1", "s2", "s3"};

  SECTION("in any order") {
    const std::vector<const GgufHeader*> shuffled{&h[2], &h[0], &h[1]};
    REQUIRE(check_gguf_splits(shuffled, labels) == std::vector<std::size_t>{1, 2, 0});
  }
  SECTION("one split missing") {
    const std::vector<const GgufHeader*> two{&h[0], &h[1]};
    REQUIRE_THROWS_WITH(check_gguf_splits(two, std::span(labels).first(2)),
                        contains("s1") && contains("split.count is 3, but 2 split files were given"));
  }
  SECTION("the same split twice") {
    const std::vector<const GgufHeader*> twice{&h[0], &h[1], &h[1]};
    REQUIRE_THROWS_WITH(check_gguf_splits(twice, labels), contains("s3: split.no 1 is also that of s2"));
  }
  SECTION("a file without split keys among splits") {
    const GgufHeader plain = read_gguf_header(vindex_test::fixture("gguf/mixed_v3.gguf"), "plain");
    const std::vector<const GgufHeader*> mixed{&h[0], &plain, &h[2]};
    REQUIRE_THROWS_WITH(check_gguf_splits(mixed, labels), contains("s2: has no split.no/split.count metadata"));
    const std::vector<const GgufHeader*> alone{&plain};
    REQUIRE(check_gguf_splits(alone, std::span(labels).first(1)) == std::vector<std::size_t>{0});
  }
  SECTION("a tensor in two splits, and a tensor count that disagrees") {
    h[1].tensors.push_back(h[0].tensors[0]);
    const std::vector<const GgufHeader*> all{&h[0], &h[1], &h[2]};
    REQUIRE_THROWS_WITH(check_gguf_splits(all, labels), contains("split.tensors.count is 5, but the 3 splits hold 6"));
    h[2].tensors.pop_back();
    REQUIRE_THROWS_WITH(check_gguf_splits(all, labels),
                        contains("s2: tensor 'blk.0.t0.weight': the tensor is also in s1"));
  }
}

TEST_CASE("split keys must come together and agree", "[gguf][split][hostile]") {
  Builder b = two_tensors();
  b.kv("split.no", 2).put(std::uint16_t{0});
  SECTION("split.no alone") { require_format_error(b.bytes(), "no 'split.count'"); }
  SECTION("split.count 0") {
    b.kv("split.count", 2).put(std::uint16_t{0});
    b.kv("split.tensors.count", kI32).put(std::int32_t{2});
    require_format_error(b.bytes(), "split.count 0 is not between 1 and 65535");
  }
  SECTION("split.no not below split.count") {
    Builder c = two_tensors();
    c.kv("split.no", 2).put(std::uint16_t{2});
    c.kv("split.count", 2).put(std::uint16_t{2});
    c.kv("split.tensors.count", kI32).put(std::int32_t{2});
    require_format_error(c.bytes(), "split.no 2 is not below split.count 2");
  }
  SECTION("negative tensor count") {
    b.kv("split.count", 2).put(std::uint16_t{1});
    b.kv("split.tensors.count", kI32).put(std::int32_t{-1});
    require_format_error(b.bytes(), "'split.tensors.count' holds INT32 -1, expected a non-negative integer");
  }
}

TEST_CASE("a big-endian file, version 1 and unknown versions are refused", "[gguf][hostile]") {
  const auto path = vindex_test::fixture("gguf/big_endian.gguf");
  REQUIRE_THROWS_AS(read_gguf_header(path, "big_endian.gguf"), FormatError);
  REQUIRE_THROWS_WITH(read_gguf_header(path, "big_endian.gguf"),
                      contains("big_endian.gguf") && contains("a big-endian GGUF file (version field 0x03000000") &&
                          contains("only little-endian"));
  Builder b = two_tensors();
  b.version = 1;
  require_format_error(b.bytes(), "GGUF version 1");
  b.version = 4;
  require_format_error(b.bytes(), "unsupported GGUF version 4");
  b.version = 0x02000000;
  require_format_error(b.bytes(), "version 2 byte-swapped");
  b.version = 2;
  REQUIRE(parse_gguf(b.bytes(), "x").version == 2);
}

TEST_CASE("a file truncated at any byte up to its last tensor's end is refused", "[gguf][hostile]") {
  for (const char* name : {"mixed_v3.gguf", "types_v2.gguf", "split-00001-of-00003.gguf"}) {
    const std::vector<std::byte> bytes = read_all(vindex_test::fixture(std::string("gguf/") + name));
    const GgufHeader whole = parse_gguf(bytes, name);
    std::uint64_t end = 0;
    for (const GgufTensorInfo& t : whole.tensors) end = std::max(end, t.offset + t.byte_size);
    INFO(name);
    for (std::size_t n = 0; n < end; ++n) {
      const std::span prefix(bytes.data(), n);
      REQUIRE_THROWS_AS(parse_gguf(prefix, name), FormatError);
      // The same prefix read from a longer file: more bytes are asked for until the header is whole.
      std::uint64_t needed = 0;
      const auto h = parse_gguf_header_prefix(prefix, bytes.size(), name, needed);
      if (n < whole.header_size) {
        REQUIRE_FALSE(h.has_value());
        REQUIRE(needed > n);
        REQUIRE(needed <= whole.header_size);
      } else {
        REQUIRE(h.has_value());
        REQUIRE(h->tensors.size() == whole.tensors.size());
      }
    }
    REQUIRE(parse_gguf(std::span(bytes.data(), end), name).tensors.size() == whole.tensors.size());
  }
}

TEST_CASE("a header larger than the first read is read in growing steps", "[gguf]") {
  Builder b = two_tensors();
  b.kv("tokenizer.chat_template", kString).str(std::string(3 << 20, 'x'));  // 3 MiB: past the first 1 MiB read
  b.kv("tokenizer.ggml.tokens", kArray).u32(kString).u64(100000);
  for (int i = 0; i < 100000; ++i) b.kvs.str("token" + std::to_string(i));
  vindex_test::TempDir dir;
  const auto path = dir.path() / "big.gguf";
  vindex_test::write_bytes(path, b.bytes());
  const GgufHeader h = read_gguf_header(path, "big.gguf");
  REQUIRE(h.header_size > (3u << 20));
  REQUIRE(h.metadata.get_array_of_strings("tokenizer.ggml.tokens")->at(99999) == "token99999");
  REQUIRE(h.tensors.size() == 2);
  REQUIRE(h.tensors[1].offset == h.data_offset + 32);
}

TEST_CASE("a file with metadata and no tensors is valid", "[gguf]") {
  Builder b;
  b.kv_u32("llama.block_count", 1);
  const GgufHeader h = parse_gguf(b.bytes(), "x");
  REQUIRE(h.tensors.empty());
  REQUIRE(h.metadata.get_uint("llama.block_count") == 1u);
}

TEST_CASE("magic, counts and lengths are bounded", "[gguf][hostile]") {
  SECTION("no magic") {
    std::vector<std::byte> bytes = two_tensors().bytes();
    bytes[3] = std::byte{'X'};
    require_format_error(bytes, "does not start with the magic 'GGUF'");
    require_format_error({}, "does not start with the magic");
  }
  SECTION("a safetensors file is not GGUF") {
    const auto path = vindex_test::fixture("steep_mixed/model.safetensors");
    REQUIRE_THROWS_WITH(read_gguf_header(path, "model.safetensors"), contains("not a GGUF file"));
    REQUIRE_FALSE(has_gguf_magic(read_all(path)));
    REQUIRE(has_gguf_magic(read_all(vindex_test::fixture("gguf/types_v2.gguf"))));
  }
  SECTION("huge tensor count") {
    Builder b = two_tensors();
    b.tensor_count = ~std::uint64_t{0};
    require_format_error(b.bytes(), "tensor count 18446744073709551615 exceeds the limit");
  }
  SECTION("tensor count larger than the file can hold") {
    Builder b = two_tensors();
    b.tensor_count = 1000;
    require_format_error(b.bytes(), "1000 tensor infos and 1 metadata entries cannot fit");
  }
  SECTION("huge metadata count") {
    Builder b = two_tensors();
    b.kv_count = std::uint64_t{1} << 62;
    require_format_error(b.bytes(), "metadata count 4611686018427387904 exceeds the limit");
  }
  SECTION("string length of 2^64 - 1") {
    Builder b;
    b.kv("k", kString).u64(~std::uint64_t{0});
    require_format_error(b.bytes(), "string of 18446744073709551615 bytes in metadata key 'k' exceeds the limit");
  }
  SECTION("string running past the end of the file") {
    Builder b;
    b.kv("k", kString).u64(1000).put(std::uint32_t{0});
    require_format_error(b.bytes(), "the file ends inside metadata key 'k': 1000 bytes needed");
  }
  SECTION("key length of 2^64 - 1") {
    Builder b;
    ++b.n_kv;
    b.kvs.u64(~std::uint64_t{0});
    b.kvs.u64(0);
    require_format_error(b.bytes(), "key of 18446744073709551615 bytes in metadata entry 0 exceeds the limit");
  }
  SECTION("array count larger than the bytes left") {
    Builder b;
    b.kv("k", kArray).u32(kU64).u64(std::uint64_t{1} << 40).u64(0);
    require_format_error(b.bytes(), "metadata key 'k' claims 1099511627776 array elements of type UINT64");
  }
  SECTION("array count of 2^64 - 1 strings") {
    Builder b;
    b.kv("k", kArray).u32(kString).u64(~std::uint64_t{0});
    require_format_error(b.bytes(), "array elements of type STRING, more than");
  }
  SECTION("arrays nested five deep") {
    Builder b;
    Bytes& v = b.kv("k", kArray);
    for (int i = 0; i < 4; ++i) v.u32(kArray).u64(1);
    v.u32(kU8).u64(1).put(std::uint8_t{7});
    require_format_error(b.bytes(), "arrays in metadata key 'k' are nested deeper than 4 levels");
  }
  SECTION("arrays nested four deep are fine") {
    Builder b;
    Bytes& v = b.kv("k", kArray);
    for (int i = 0; i < 3; ++i) v.u32(kArray).u64(1);
    v.u32(kU8).u64(1).put(std::uint8_t{7});
    REQUIRE(parse_gguf(b.bytes(), "x").metadata.find("k") != nullptr);
  }
}

TEST_CASE("metadata values are checked", "[gguf][hostile]") {
  SECTION("unknown value type") {
    Builder b;
    b.kv("k", 13).put(std::uint32_t{0});
    require_format_error(b.bytes(), "metadata key 'k' has unknown value type 13");
  }
  SECTION("array of an unknown value type") {
    Builder b;
    b.kv("k", kArray).u32(99).u64(1).u64(0);
    require_format_error(b.bytes(), "metadata key 'k' is an array of unknown value type 99");
  }
  SECTION("BOOL that is neither 0 nor 1") {
    Builder b;
    b.kv("k", kBool).put(std::uint8_t{2});
    require_format_error(b.bytes(), "BOOL value 2 in metadata key 'k' is neither 0 nor 1");
  }
  SECTION("empty key") {
    Builder b;
    b.kv("", kU32).u32(1);
    require_format_error(b.bytes(), "key in metadata entry 0 is empty");
  }
  SECTION("key that is not UTF-8") {
    Builder b;
    b.kv("a\xff", kU32).u32(1);
    require_format_error(b.bytes(), "key in metadata entry 0 is not valid UTF-8");
  }
  SECTION("duplicate keys") {
    Builder b = two_tensors();
    b.kv_u32("llama.block_count", 1).kv_u32("llama.block_count", 2);
    require_format_error(b.bytes(), "duplicate metadata key 'llama.block_count'");
  }
}

TEST_CASE("general.alignment is a UINT32 power of two and the data section follows it", "[gguf][hostile]") {
  SECTION("alignment 0") {
    require_format_error(two_tensors().kv_u32("general.alignment", 0).bytes(),
                         "general.alignment 0 is not a power of two");
  }
  SECTION("alignment 48") {
    require_format_error(two_tensors().kv_u32("general.alignment", 48).bytes(),
                         "general.alignment 48 is not a power of two");
  }
  SECTION("alignment as UINT64") {
    Builder b = two_tensors();
    b.kv("general.alignment", kU64).u64(64);
    require_format_error(b.bytes(), "'general.alignment' holds UINT64, expected UINT32");
  }
  SECTION("offsets are counted from the aligned end of the header") {
    Builder b = two_tensors();
    b.kv_u32("general.alignment", 256);
    b.alignment = 256;
    b.infos = {};
    b.n_tensors = 0;
    b.tensor("a", {4, 2}, kF32, 0).tensor("b", {4, 2}, kF32, 256);
    b.data_bytes = 256 + 32;
    const GgufHeader h = parse_gguf(b.bytes(), "x");
    REQUIRE(h.alignment == 256);
    REQUIRE(h.data_offset == 256);
    REQUIRE(h.tensors[1].offset == 512);
  }
  SECTION("an offset that is not a multiple of the alignment") {
    Builder b = two_tensors();
    b.infos = {};
    b.n_tensors = 0;
    b.tensor("a", {4, 2}, kF32, 0).tensor("b", {4, 2}, kF32, 33);
    require_format_error(b.bytes(), "tensor 'b': offset 33 is not a multiple of the alignment 32");
  }
}

TEST_CASE("tensor infos are checked", "[gguf][hostile]") {
  auto one = [](std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset, std::uint64_t data) {
    Builder b;
    b.tensor("w", std::move(dims), type, offset);
    b.data_bytes = data;
    return b.bytes();
  };
  SECTION("more than 4 dimensions") {
    require_format_error(one({1, 1, 1, 1, 1}, kF32, 0, 4), "tensor 'w': 5 dimensions, more than ggml's 4");
  }
  SECTION("a dimension of 0") { require_format_error(one({4, 0}, kF32, 0, 0), "tensor 'w': dimension 1 is 0"); }
  SECTION("element count overflow") {
    require_format_error(one({std::uint64_t{1} << 32, std::uint64_t{1} << 32}, kF32, 0, 4),
                         "element count of dims [4294967296, 4294967296] overflows");
  }
  SECTION("element count above INT64_MAX") {
    require_format_error(one({std::uint64_t{1} << 63}, kF32, 0, 4), "overflows");
  }
  SECTION("byte size overflow") {
    require_format_error(one({std::uint64_t{1} << 62}, kF32, 0, 4),
                         "byte size of dims [4611686018427387904] of F32 overflows");
  }
  SECTION("unknown ggml type") {
    require_format_error(one({32}, 36, 0, 32), "tensor 'w': unknown ggml type id 36");
    require_format_error(one({32}, 4, 0, 32), "unknown ggml type id 4");
    require_format_error(one({32}, 1000, 0, 32), "unknown ggml type id 1000");
  }
  SECTION("I2_S (36): bitnet.cpp's, in its architectures only, n/4 + 32 bytes") {
    for (const char* arch : {"bitnet-b1.58", "bitnet-25", "bitnet"}) {
      Builder b;
      b.kv(std::string_view("general.architecture"), kString).str(arch);
      b.tensor("w", {256, 2}, 36, 0);
      b.data_bytes = 512 / 4 + 32;
      const GgufHeader h = parse_gguf(b.bytes(), "model.gguf");
      REQUIRE(h.tensors.at(0).type_name == "I2_S");
      REQUIRE(h.tensors.at(0).byte_size == 512 / 4 + 32);
      b.data_bytes = 512 / 4 + 31;  // the trailer holding the scale cut short
      require_format_error(b.bytes(), "run past");
    }
    Builder llama;
    llama.kv(std::string_view("general.architecture"), kString).str("llama");
    llama.tensor("w", {256, 2}, 36, 0);
    llama.data_bytes = 512 / 4 + 32;
    require_format_error(llama.bytes(), "unknown ggml type id 36 (bitnet.cpp's I2_S");
  }
  SECTION("rows that are not whole blocks") {
    require_format_error(one({16, 2}, kQ4_0, 0, 64),
                         "tensor 'w': rows of 16 elements (dims [16, 2]) are not a whole number of Q4_0 blocks of 32");
  }
  SECTION("a whole-block row of a block type") {
    REQUIRE(parse_gguf(one({64, 2}, kQ4_0, 0, 72), "x").tensors[0].byte_size == 72);
  }
  SECTION("a 0-dimensional tensor holds one element") {
    REQUIRE(parse_gguf(one({}, kF32, 0, 4), "x").tensors[0].byte_size == 4);
  }
  SECTION("offset outside the data section") {
    require_format_error(one({4}, kF32, 64, 32),
                         "tensor 'w': 16 bytes at data offset 64 run past the 32 bytes of the data section");
    require_format_error(one({4}, kF32, std::uint64_t{1} << 63, 32), "run past");
  }
  SECTION("the last tensor cut short") {
    require_format_error(one({16}, kF32, 0, 32), "64 bytes at data offset 0 run past the 32 bytes");
  }
  SECTION("empty name") {
    Builder b;
    b.tensor("", {4}, kF32, 0);
    b.data_bytes = 16;
    require_format_error(b.bytes(), "tensor name in tensor info 0 is empty");
  }
  SECTION("overlapping tensors") {
    Builder b;
    b.tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32);
    b.data_bytes = 64;
    require_format_error(b.bytes(), "tensor 'b': bytes [");
    require_format_error(b.bytes(), "overlap tensor 'a' at [");
  }
  SECTION("the same bytes for two tensors, listed out of order") {
    Builder b;
    b.tensor("late", {8}, kF32, 32).tensor("a", {8}, kF32, 0).tensor("b", {8}, kF32, 0);
    b.data_bytes = 64;
    require_format_error(b.bytes(), "tensor 'b'");
    require_format_error(b.bytes(), "overlap tensor 'a'");
  }
  SECTION("tensors out of order, with a gap, do not overlap") {
    Builder b;
    b.tensor("late", {8}, kF32, 64).tensor("a", {8}, kF32, 0);
    b.data_bytes = 96;
    const GgufHeader h = parse_gguf(b.bytes(), "x");
    REQUIRE(h.tensors[0].name == "late");  // file order kept
  }
  SECTION("duplicate tensor names") {
    Builder b;
    b.tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32);
    b.data_bytes = 64;
    require_format_error(b.bytes(), "tensor 'w': duplicate tensor name");
  }
}
