// The safetensors header validator against valid files written by the reference implementation
// (the fixtures) and against one malformed or hostile header per rule.
#include <cstring>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"
#include "vindex/format/safetensors_header.hpp"

using namespace vindex;
using vindex_test::SafetensorsBuilder;
using vindex_test::contains;

namespace {

std::vector<std::byte> zeros(std::size_t n) { return std::vector<std::byte>(n); }

SafetensorsBuilder two_tensors() {
  SafetensorsBuilder b;
  b.add("a", "F32", {2, 3}, zeros(24)).add("b", "BF16", {4}, zeros(8));
  return b;
}

std::vector<std::byte> with_header(const std::string& header_text, std::size_t data_bytes) {
  return SafetensorsBuilder::raw(header_text, zeros(data_bytes));
}

void require_format_error(const std::vector<std::byte>& bytes, const std::string& expected_text) {
  REQUIRE_THROWS_AS(parse_safetensors(bytes, "shard.safetensors"), FormatError);
  REQUIRE_THROWS_WITH(parse_safetensors(bytes, "shard.safetensors"), contains("shard.safetensors") && contains(expected_text));
}

}  // namespace

TEST_CASE("a valid header is parsed in file order with metadata", "[safetensors]") {
  SafetensorsBuilder b = two_tensors();
  b.header()["__metadata__"] = {{"format", "pt"}};
  const SafetensorsHeader h = parse_safetensors(b.bytes(), "x");
  REQUIRE(h.tensors.size() == 2);
  REQUIRE(h.tensors[0].name == "a");
  REQUIRE(h.tensors[0].dtype == DType::F32);
  REQUIRE(h.tensors[0].shape == std::vector<std::uint64_t>{2, 3});
  REQUIRE(h.tensors[1].begin == 24);
  REQUIRE(h.tensors[1].end == 32);
  REQUIRE(h.data_size == 32);
  REQUIRE(h.metadata.at("format") == "pt");
  REQUIRE(h.find("b") == &h.tensors[1]);
  REQUIRE(h.find("c") == nullptr);
}

TEST_CASE("zero-sized tensors and padding spaces after the JSON are accepted", "[safetensors]") {
  const std::string text =
      R"({"empty":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})"
      "        ";
  const SafetensorsHeader h = parse_safetensors(with_header(text, 3), "x");
  REQUIRE(h.tensors.size() == 2);
  REQUIRE(h.find("empty")->byte_size() == 0);
}

TEST_CASE("every shard written by the safetensors library validates", "[safetensors][fixtures]") {
  for (const char* shard : {"kimi_k2_tiny/model-00001-of-00004.safetensors", "kimi_k2_tiny/model-00002-of-00004.safetensors",
                            "kimi_k2_tiny/model-00003-of-00004.safetensors", "kimi_k2_tiny/model-00004-of-00004.safetensors",
                            "steep_mixed/model.safetensors"}) {
    const auto path = vindex_test::fixture(shard);
    const SafetensorsHeader h = read_safetensors_header(path, path.string());
    REQUIRE(!h.tensors.empty());
    REQUIRE(h.metadata.at("format") == "pt");
    REQUIRE(h.data_offset() + h.data_size == std::filesystem::file_size(path));
  }
}

TEST_CASE("header length prefix is checked", "[safetensors][hostile]") {
  SECTION("file shorter than the 8-byte prefix") { require_format_error(zeros(5), "too short"); }
  SECTION("header of 100 MB + 1") {
    std::vector<std::byte> bytes = zeros(16);
    const std::uint64_t n = kMaxSafetensorsHeaderBytes + 1;
    std::memcpy(bytes.data(), &n, 8);
    require_format_error(bytes, "exceeds the limit");
  }
  SECTION("header length beyond the end of the file") {
    std::vector<std::byte> bytes = two_tensors().bytes();
    const std::uint64_t n = bytes.size();  // claims more than the file holds after the prefix
    std::memcpy(bytes.data(), &n, 8);
    require_format_error(bytes, "runs past the end of the file");
  }
  SECTION("the largest 64-bit length does not wrap around") {
    std::vector<std::byte> bytes = two_tensors().bytes();
    const std::uint64_t n = ~std::uint64_t{0};
    std::memcpy(bytes.data(), &n, 8);
    require_format_error(bytes, "exceeds the limit");
  }
}

TEST_CASE("header text must be UTF-8 JSON starting with '{'", "[safetensors][hostile]") {
  SECTION("invalid UTF-8") { require_format_error(with_header("{\"a\xff\":1}", 0), "UTF-8"); }
  SECTION("overlong UTF-8 encoding") { require_format_error(with_header("{\"\xc0\xaf\":1}", 0), "UTF-8"); }
  SECTION("UTF-16 surrogate encoded in UTF-8") { require_format_error(with_header("{\"\xed\xa0\x80\":1}", 0), "UTF-8"); }
  SECTION("does not start with a brace") { require_format_error(with_header(" {}", 0), "does not start with '{'"); }
  SECTION("truncated JSON") { require_format_error(with_header(R"({"a":{"dtype":"F32")", 0), "not valid JSON"); }
  SECTION("top level is not an object") { require_format_error(with_header("{}[]", 0), "not valid JSON"); }
  SECTION("nesting deeper than 64 levels (a stack-exhaustion attempt)") {
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":)" + deep + R"(,"data_offsets":[0,1]}})", 1),
                         "nested deeper than 64");
  }
  SECTION("null metadata is accepted as absent") {
    REQUIRE(parse_safetensors(with_header(R"({"__metadata__":null})", 0), "x").metadata.empty());
  }
  SECTION("metadata values must be strings") {
    require_format_error(with_header(R"({"__metadata__":{"x":1}})", 0), "is not a string");
  }
}

TEST_CASE("tensor entries are validated", "[safetensors][hostile]") {
  SECTION("duplicate tensor names") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                     R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                     2),
                         "duplicate name");
  }
  SECTION("unknown dtype") {
    require_format_error(with_header(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16),
                         "tensor 'w': unknown dtype 'F128'");
  }
  SECTION("missing field") {
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":[1]}})", 1), "has no 'data_offsets'");
  }
  SECTION("negative dimension") {
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1), "non-negative integer");
  }
  SECTION("fractional dimension") {
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", 1), "non-negative integer");
  }
  SECTION("element count overflow") {
    require_format_error(
        with_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4), "overflows");
  }
  SECTION("element count times dtype size overflow") {
    require_format_error(with_header(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8),
                         "overflows");
  }
  SECTION("sub-byte dtype that does not fill whole bytes") {
    require_format_error(with_header(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2), "whole bytes");
  }
  SECTION("byte span disagreeing with shape and dtype") {
    require_format_error(with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "needs 8");
  }
  SECTION("offsets that end before they begin") {
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4), "end before");
  }
  SECTION("offsets are not a pair") {
    require_format_error(with_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 2), "not a pair");
  }
}

TEST_CASE("offsets must tile the data buffer exactly", "[safetensors][hostile]") {
  SECTION("gap between tensors") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                     R"("b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                                     3),
                         "tensor 'b': data_offsets [2, 3] leave a gap of 1 bytes after tensor 'a'");
  }
  SECTION("first tensor not at offset 0") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2), "after the header");
  }
  SECTION("overlapping tensors") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                     R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                                     3),
                         "overlap tensor 'a'");
  }
  SECTION("tensor past the end of the file (truncated shard)") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 5), "run past the 5 data bytes");
  }
  SECTION("trailing bytes no tensor covers") {
    require_format_error(with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 6), "4 bytes after the last tensor");
  }
}

TEST_CASE("a truncated shard on disk is refused", "[safetensors][hostile]") {
  vindex_test::TempDir dir;
  std::vector<std::byte> bytes = two_tensors().bytes();
  bytes.resize(bytes.size() - 3);
  vindex_test::write_bytes(dir.path() / "t.safetensors", bytes);
  const auto path = dir.path() / "t.safetensors";
  REQUIRE_THROWS_WITH(read_safetensors_header(path, path.string()), contains("t.safetensors") && contains("tensor 'b'"));
}

TEST_CASE("UTF-8 validation follows the standard", "[safetensors]") {
  std::size_t bad = 0;
  REQUIRE(is_valid_utf8("plain ascii", bad));
  REQUIRE(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", bad));  // é € 😀
  REQUIRE_FALSE(is_valid_utf8("ok\x80", bad));
  REQUIRE(bad == 2);
  REQUIRE_FALSE(is_valid_utf8("\xf4\x90\x80\x80", bad));  // above U+10FFFF
  REQUIRE_FALSE(is_valid_utf8("\xe2\x82", bad));          // truncated sequence
}
