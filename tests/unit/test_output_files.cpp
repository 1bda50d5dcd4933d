// Output directory rules, the output set's commit and manifest, and their recovery after a kill.
#include <sys/stat.h>

#include <array>
#include <fstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/checksum.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/output/output_files.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

namespace {

std::size_t entries(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}
}  // namespace

TEST_CASE("the output directory must be absent, empty, or --overwrite", "[outputs]") {
  vindex_test::TempDir tmp;
  const fs::path out = tmp.path() / "a" / "b";
  (void)prepare_output_directory(out, OutputMode::fresh);
  REQUIRE(fs::is_directory(out));
  (void)prepare_output_directory(out, OutputMode::fresh);  // empty: fine
  std::ofstream(out / "vindex.h5") << "old";
  REQUIRE_THROWS_AS(prepare_output_directory(out, OutputMode::fresh), UsageError);
  REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::fresh), contains("not empty") && contains("--overwrite"));
  REQUIRE_NOTHROW(prepare_output_directory(out, OutputMode::overwrite));
  REQUIRE_THROWS_WITH(prepare_output_directory(out / "vindex.h5", OutputMode::overwrite), contains("is not a directory"));
  fs::create_directory(out / "moe_config.json");
  REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::overwrite), contains("moe_config.json exists and is not a file"));
}

TEST_CASE("temporary files of a killed run do not block the next one", "[outputs]") {
  vindex_test::TempDir tmp;
  std::ofstream(tmp.path() / ".vindex.h5.partial-4242") << "half";
  REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::fresh));
  REQUIRE(fs::is_empty(tmp.path()));
  std::ofstream(tmp.path() / ".notes.partial-1") << "not ours";
  REQUIRE_THROWS_AS(prepare_output_directory(tmp.path(), OutputMode::fresh), UsageError);
}

namespace {

// A committed set of two JSON outputs carrying their run id (what verify_output_set checks).
void commit_set(const fs::path& dir, const std::string& run_id, const std::string& value,
                std::vector<std::string> names = {"phase1_moe_svd.json", "moe_config.json"}) {
  OutputSet set(dir, run_id);
  for (const std::string& name : names) set.add(name, "{\"run_id\": \"" + run_id + "\", \"v\": \"" + value + "\"}\n");
  set.commit();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("an output set appears under its names, with its manifest, only when committed", "[outputs]") {
  vindex_test::TempDir tmp;
  {
    OutputSet set(tmp.path(), "r1");
    set.add("moe_config.json", "{}");
    REQUIRE(fs::exists(tmp.path() / staged_name("moe_config.json", "r1")));
    REQUIRE_FALSE(fs::exists(tmp.path() / "moe_config.json"));
  }  // abandoned: the temporary goes, nothing is left
  REQUIRE(fs::is_empty(tmp.path()));
  commit_set(tmp.path(), "r2", "a");
  REQUIRE(entries(tmp.path()) == 3);
  const OutputManifest m = verify_output_set(tmp.path());
  REQUIRE(m.run_id == "r2");
  REQUIRE(m.files.size() == 2);
  const std::string text = read_text(tmp.path() / "phase1_moe_svd.json");
  REQUIRE(m.files[0].sha256 == sha256_hex(std::as_bytes(std::span(text.data(), text.size()))));
  // A second set replaces the first; an output of the first that the second did not write goes.
  commit_set(tmp.path(), "r3", "b", {"moe_config.json"});
  REQUIRE_FALSE(fs::exists(tmp.path() / "phase1_moe_svd.json"));
  REQUIRE(verify_output_set(tmp.path()).run_id == "r3");
  REQUIRE(entries(tmp.path()) == 2);
}

TEST_CASE("a reader refuses a set whose files disagree with the manifest or with each other", "[outputs]") {
  vindex_test::TempDir tmp;
  commit_set(tmp.path(), "r1", "a");
  SECTION("a file changed after the commit") {
    std::ofstream(tmp.path() / "moe_config.json", std::ios::app) << " ";
    REQUIRE_THROWS_AS(verify_output_set(tmp.path()), InputError);
    REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("moe_config.json") && contains("does not match the manifest"));
  }
  SECTION("a file of another run, checksum and all, in its place") {
    vindex_test::TempDir other;
    commit_set(other.path(), "r9", "z");
    fs::copy_file(other.path() / "moe_config.json", tmp.path() / "moe_config.json", fs::copy_options::overwrite_existing);
    REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("moe_config.json"));
  }
  SECTION("an output the manifest does not name") {
    std::ofstream(tmp.path() / "phase2_router_svd.json") << "{\"run_id\": \"r0\"}";
    REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("phase2_router_svd.json") && contains("not in the manifest"));
  }
  SECTION("no manifest") {
    fs::remove(tmp.path() / kManifestFileName);
    REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("not a complete vindex output set"));
  }
  SECTION("a manifest that is a FIFO") {
    fs::remove(tmp.path() / kManifestFileName);
    REQUIRE(::mkfifo((tmp.path() / kManifestFileName).c_str(), 0644) == 0);
    REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("FIFO"));
  }
}

TEST_CASE("a commit killed half way is finished by the next run, or removed; never left mixed", "[outputs]") {
  // A kill during a commit leaves the commit record and some temporaries not yet renamed: the
  // state is built here exactly as OutputSet::commit leaves it after its first rename.
  vindex_test::TempDir tmp;
  commit_set(tmp.path(), "old", "a");
  const std::string old_config = read_text(tmp.path() / "moe_config.json");
  const auto interrupted_commit = [&] {
    OutputSet set(tmp.path(), "new");
    set.add("phase1_moe_svd.json", "{\"run_id\": \"new\"}");
    set.add("moe_config.json", "{\"run_id\": \"new\", \"v\": 2}");
    set.add("phase2_router_svd.json", "{\"run_id\": \"new\"}");
    // What commit() would do, stopped after the first rename: copy the temporaries aside.
    for (const char* name : {"phase1_moe_svd.json", "moe_config.json", "phase2_router_svd.json"})
      fs::copy_file(tmp.path() / staged_name(name, "new"), tmp.path() / (std::string("keep-") + name));
    set.commit();
    for (const char* name : {"moe_config.json", "phase2_router_svd.json"})
      fs::rename(tmp.path() / (std::string("keep-") + name), tmp.path() / staged_name(name, "new"));
    fs::remove(tmp.path() / "keep-phase1_moe_svd.json");
    // The old set's moe_config.json back in place, the manifest turned back into the commit record.
    std::ofstream(tmp.path() / "moe_config.json", std::ios::trunc) << old_config;
    fs::rename(tmp.path() / kManifestFileName, tmp.path() / kCommitRecordName);
    fs::remove(tmp.path() / "phase2_router_svd.json");
  };
  interrupted_commit();
  // A reader sees the unfinished commit and refuses; a fresh run refuses the directory.
  REQUIRE_THROWS_WITH(verify_output_set(tmp.path()), contains("unfinished commit"));
  REQUIRE_THROWS_AS(prepare_output_directory(tmp.path(), OutputMode::fresh), UsageError);
  SECTION("every temporary intact: rolled forward") {
    std::string note;
    REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::resume, {}, &note));
    REQUIRE_THAT(note, contains("finished the commit of run new"));
    REQUIRE(verify_output_set(tmp.path()).run_id == "new");
    REQUIRE(read_text(tmp.path() / "moe_config.json") == "{\"run_id\": \"new\", \"v\": 2}");
    REQUIRE(entries(tmp.path()) == 4);
  }
  SECTION("a temporary lost: the set is removed, not left mixed") {
    fs::remove(tmp.path() / staged_name("moe_config.json", "new"));
    std::string note;
    REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::overwrite, {}, &note));
    REQUIRE_THAT(note, contains("removed the output files"));
    REQUIRE(fs::is_empty(tmp.path()));
  }
  SECTION("a temporary damaged: the set is removed") {
    std::ofstream(tmp.path() / staged_name("phase2_router_svd.json", "new"), std::ios::app) << "x";
    std::string note;
    REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::resume, {}, &note));
    REQUIRE_THAT(note, contains("removed"));
    REQUIRE(fs::is_empty(tmp.path()));
  }
}

TEST_CASE("SHA-256 and XXH64 match their published test vectors", "[outputs][checksum]") {
  const auto bytes = [](const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); };
  // FIPS 180-2, appendix B.1 and B.2.
  REQUIRE(sha256_hex(bytes("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE(sha256_hex(bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  REQUIRE(sha256_hex({}) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // xxHash's XXH64 of the empty input (seed 0), its sanity-check value; longer inputs are checked
  // against the xxhash library end to end (tests/integration/check_outputs.py, weight digests).
  REQUIRE(xxh64({}) == 0xEF46DB3751D8E999ull);
  // Incremental updates equal the one-shot hash, whatever the split.
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>('a' + i % 26);
  const std::uint64_t whole = xxh64(bytes(text));
  for (std::size_t cut : {0u, 1u, 7u, 31u, 32u, 33u, 100u, 299u}) {
    Xxh64 h;
    h.update(bytes(text.substr(0, cut)));
    h.update(bytes(text.substr(cut)));
    REQUIRE(h.value() == whole);
    Sha256 s;
    s.update(bytes(text.substr(0, cut)));
    s.update(bytes(text.substr(cut)));
    REQUIRE(s.hex_digest() == sha256_hex(bytes(text)));
  }
}

TEST_CASE("the output directory is locked while a run holds it", "[outputs]") {
  vindex_test::TempDir tmp;
  const fs::path out = tmp.path() / "out";
  {
    const OutputLock held = prepare_output_directory(out, OutputMode::fresh);  // created, then locked
    REQUIRE(held.held());
    REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::overwrite),
                        contains("another vindex_mpi run is using this directory"));
  }
  REQUIRE_NOTHROW(prepare_output_directory(out, OutputMode::overwrite));  // released with the lock
}
