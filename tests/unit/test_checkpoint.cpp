// Opening checkpoint directories: the index, shard headers, tensor reads, special files, and the
// model fingerprint.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/format/model_fingerprint.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

namespace {

// A writable copy of the demo checkpoint whose files a test may break.
fs::path copy_demo(const fs::path& to) {
  fs::copy(vindex_test::fixture("kimi_k2_tiny"), to, fs::copy_options::recursive);
  return to;
}

}  // namespace

TEST_CASE("the sharded demo checkpoint opens with every indexed tensor", "[checkpoint]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const auto index = vindex_test::read_json(vindex_test::fixture("kimi_k2_tiny/model.safetensors.index.json"));
  REQUIRE(ckpt.tensor_names().size() == index["weight_map"].size());
  REQUIRE(ckpt.shards().size() == 4);
  REQUIRE(ckpt.total_tensor_bytes() == index["metadata"]["total_size"].get<std::uint64_t>());
  for (const auto& [name, file] : index["weight_map"].items()) {
    const TensorRecord* r = ckpt.find(name);
    REQUIRE(r != nullptr);
    REQUIRE(ckpt.shards()[r->shard].file_name == file.get<std::string>());
  }
  // Layer 2's experts are split over two shards.
  REQUIRE(ckpt.find("model.layers.2.mlp.experts.3.down_proj.weight")->shard !=
          ckpt.find("model.layers.2.mlp.experts.4.down_proj.weight")->shard);
  REQUIRE(ckpt.config()["model_type"] == "kimi_k2");
}

TEST_CASE("a view's bytes are the tensor's bytes in the shard", "[checkpoint]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const TensorRecord* r = ckpt.find("model.layers.1.mlp.experts.0.down_proj.weight");
  REQUIRE(r != nullptr);
  const TensorView view = ckpt.view(*r);
  const std::vector<std::byte> bytes = view.read_all();
  REQUIRE(bytes.size() == 200 * 136);
  std::ifstream in(ckpt.shards()[r->shard].path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(ckpt.shards()[r->shard].header.data_offset() + r->info->begin));
  std::vector<char> expected(bytes.size());
  in.read(expected.data(), static_cast<std::streamsize>(expected.size()));
  REQUIRE(std::memcmp(expected.data(), bytes.data(), expected.size()) == 0);
  std::vector<std::byte> part(100);
  view.read(1000, 1100, part.data());
  REQUIRE(std::memcmp(expected.data() + 1000, part.data(), part.size()) == 0);
  REQUIRE_THROWS_AS(view.read(0, bytes.size() + 1, part.data()), InternalError);
}

TEST_CASE("a shard truncated while open is an input error naming the file and tensor, not a signal",
          "[checkpoint][hostile]") {
  // Reads are pread, never a memory map: bytes past the new end come back short, not as SIGBUS.
  vindex_test::TempDir tmp;
  const fs::path model = copy_demo(tmp.path() / "m");
  const Checkpoint ckpt = Checkpoint::open(model);
  const TensorRecord* r = ckpt.find("model.layers.3.mlp.experts.7.down_proj.weight");
  REQUIRE(r != nullptr);
  const fs::path shard = ckpt.shards()[r->shard].path;
  REQUIRE(::truncate(shard.c_str(), static_cast<off_t>(ckpt.shards()[r->shard].header.data_offset() + r->info->begin + 10)) == 0);
  REQUIRE_THROWS_AS(ckpt.view(*r).read_all(), InputError);
  REQUIRE_THROWS_WITH(ckpt.view(*r).read_all(), contains(shard.filename().string()) &&
                                                    contains("tensor 'model.layers.3.mlp.experts.7.down_proj.weight'") &&
                                                    contains("truncated"));
}

TEST_CASE("a FIFO, a directory or a device where a model file belongs is refused without blocking",
          "[checkpoint][hostile]") {
  // open() of a FIFO blocks until a writer appears: every file is opened with O_NONBLOCK and its
  // type checked on the descriptor before anything is read.
  vindex_test::TempDir tmp;
  const fs::path model = copy_demo(tmp.path() / "m");
  const auto replace_by_fifo = [&](const char* name) {
    fs::remove(model / name);
    REQUIRE(::mkfifo((model / name).c_str(), 0644) == 0);
  };
  SECTION("config.json is a FIFO") {
    replace_by_fifo("config.json");
    REQUIRE_THROWS_AS(Checkpoint::open(model), InputError);
    REQUIRE_THROWS_WITH(Checkpoint::open(model), contains("config.json") && contains("FIFO"));
  }
  SECTION("the index is a FIFO") {
    replace_by_fifo("model.safetensors.index.json");
    REQUIRE_THROWS_WITH(Checkpoint::open(model), contains("model.safetensors.index.json") && contains("FIFO"));
  }
  SECTION("a shard is a FIFO") {
    replace_by_fifo("model-00003-of-00004.safetensors");
    REQUIRE_THROWS_WITH(Checkpoint::open(model), contains("model-00003-of-00004.safetensors") && contains("FIFO"));
  }
  SECTION("a shard is a directory") {
    fs::remove(model / "model-00003-of-00004.safetensors");
    fs::create_directory(model / "model-00003-of-00004.safetensors");
    REQUIRE_THROWS_AS(Checkpoint::open(model), InputError);
    REQUIRE_THROWS_WITH(Checkpoint::open(model), contains("is a directory, not a regular file"));
  }
  SECTION("config.json over 16 MiB") {
    std::ofstream(model / "config.json", std::ios::app) << std::string((16 << 20) + 1, ' ');
    REQUIRE_THROWS_AS(Checkpoint::open(model), InputError);
    REQUIRE_THROWS_WITH(Checkpoint::open(model), contains("config.json") && contains("more than"));
  }
}

TEST_CASE("the single-file layout opens without an index", "[checkpoint]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("steep_mixed"));
  REQUIRE(ckpt.shards().size() == 1);
  REQUIRE(ckpt.listing_path().filename() == "model.safetensors");
  REQUIRE(ckpt.find("model.layers.1.mlp.experts.0.down_proj.weight") != nullptr);
}

TEST_CASE("broken checkpoint directories are clear errors", "[checkpoint][hostile]") {
  vindex_test::TempDir tmp;
  const fs::path dir = copy_demo(tmp.path() / "model");

  SECTION("not a directory") {
    REQUIRE_THROWS_WITH(Checkpoint::open(dir / "config.json"), contains("is not a directory"));
  }
  SECTION("config.json missing") {
    fs::remove(dir / "config.json");
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("config.json") && contains("missing"));
  }
  SECTION("index naming a missing shard") {
    fs::remove(dir / "model-00003-of-00004.safetensors");
    REQUIRE_THROWS_AS(Checkpoint::open(dir), InputError);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("model-00003-of-00004.safetensors") && contains("does not exist"));
  }
  SECTION("index naming a tensor the shard lacks") {
    auto index = vindex_test::read_json(dir / "model.safetensors.index.json");
    index["weight_map"]["model.layers.9.mlp.down_proj.weight"] = "model-00001-of-00004.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("model.layers.9.mlp.down_proj.weight") &&
                                                   contains("missing from this shard"));
  }
  SECTION("shard name leading outside the model directory") {
    auto index = vindex_test::read_json(dir / "model.safetensors.index.json");
    index["weight_map"]["model.norm.weight"] = "../model-00004-of-00004.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("not a plain file name"));
  }
  SECTION("duplicate key in the index") {
    std::ofstream(dir / "model.safetensors.index.json")
        << R"({"weight_map":{"a":"model-00001-of-00004.safetensors","a":"model-00002-of-00004.safetensors"}})";
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("duplicate name"));
  }
  SECTION("truncated shard") {
    const fs::path shard = dir / "model-00002-of-00004.safetensors";
    fs::resize_file(shard, fs::file_size(shard) - 100);
    REQUIRE_THROWS_AS(Checkpoint::open(dir), FormatError);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("model-00002-of-00004.safetensors") && contains("truncated"));
  }
  SECTION("neither index nor single file") {
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().extension() == ".json" && entry.path().filename() != "config.json") fs::remove(entry.path());
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("holds neither"));
  }
}

TEST_CASE("a Hugging Face cache snapshot (links into ../../blobs) opens; a link elsewhere does not", "[checkpoint][hostile]") {
  // The hub cache's layout: models--org--name/snapshots/<revision>/<file> -> ../../blobs/<hash>.
  vindex_test::TempDir tmp;
  const fs::path repo = tmp.path() / "models--vindex--demo";
  const fs::path snapshot = repo / "snapshots" / "0123abcd";
  fs::create_directories(repo / "blobs");
  fs::create_directories(snapshot);
  int n = 0;
  for (const auto& entry : fs::directory_iterator(vindex_test::fixture("kimi_k2_tiny"))) {
    const std::string blob = "blob" + std::to_string(n++);
    fs::copy_file(entry.path(), repo / "blobs" / blob);
    fs::create_symlink(fs::path("../../blobs") / blob, snapshot / entry.path().filename());
  }
  const Checkpoint ckpt = Checkpoint::open(snapshot);
  REQUIRE(ckpt.shards().size() == 4);
  REQUIRE(fingerprint_model(ckpt).value == fingerprint_model(Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"))).value);

  // The same links from a directory that is not a cache snapshot lead outside it: refused.
  const fs::path plain = tmp.path() / "plain" / "model";
  fs::create_directories(plain);
  for (const auto& entry : fs::directory_iterator(snapshot))
    fs::create_symlink(fs::canonical(entry.path()), plain / entry.path().filename());
  REQUIRE_THROWS_WITH(Checkpoint::open(plain), contains("leads outside the model directory"));
}

TEST_CASE("the fingerprint changes with the config, any header and sampled weights", "[checkpoint]") {
  vindex_test::TempDir tmp;
  const fs::path model = copy_demo(tmp.path() / "m");
  const auto fingerprint = [&](int threads = 1) { return fingerprint_model(Checkpoint::open(model), threads).value; };
  const std::string original = fingerprint();
  REQUIRE(original.size() == 16);
  REQUIRE(fingerprint(3) == original);  // threads do not change it
  {
    std::ofstream config(model / "config.json", std::ios::app);
    config << "\n";  // whitespace only: the parsed config is the same
  }
  REQUIRE(fingerprint() == original);

  // A weight byte inside a sample (the first byte of a tensor), headers unchanged: another model.
  const Checkpoint ckpt = Checkpoint::open(model);
  const TensorRecord* r = ckpt.find("model.layers.2.mlp.experts.5.down_proj.weight");
  REQUIRE(r->info->byte_size() > 3 * kFingerprintSampleBytes);
  const auto poke = [&](std::uint64_t offset_in_tensor) {
    std::fstream f(ckpt.shards()[r->shard].path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(ckpt.shards()[r->shard].header.data_offset() + r->info->begin + offset_in_tensor));
    f.put('\x5a');
  };
  poke(0);
  const std::string weights_changed = fingerprint();
  REQUIRE(weights_changed != original);
  // A byte between the samples is not seen (model_fingerprint.hpp says so; the weight digests are).
  poke(kFingerprintSampleBytes + 7);
  REQUIRE(fingerprint() == weights_changed);

  vindex_test::rewrite_header(model / "model-00002-of-00004.safetensors", [](std::string text) {
    return text.replace(text.find("\"pt\""), 4, "\"PT\"");  // metadata only
  });
  REQUIRE(fingerprint() != weights_changed);
}
