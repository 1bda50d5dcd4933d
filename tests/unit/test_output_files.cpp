// Output directory rules and write-then-rename staging.
#include <array>
#include <fstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/errors.hpp"
#include "vindex/output_files.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

namespace {
const std::vector<std::string> kOutputs{"vindex.h5", "a.json"};

std::size_t entries(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}
}  // namespace

TEST_CASE("the output directory must be absent, empty, or --overwrite", "[outputs]") {
  vindex_test::TempDir tmp;
  const fs::path out = tmp.path() / "a" / "b";
  (void)prepare_output_directory(out, OutputMode::fresh, kOutputs);
  REQUIRE(fs::is_directory(out));
  (void)prepare_output_directory(out, OutputMode::fresh, kOutputs);  // empty: fine
  std::ofstream(out / "vindex.h5") << "old";
  REQUIRE_THROWS_AS(prepare_output_directory(out, OutputMode::fresh, kOutputs), UsageError);
  REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::fresh, kOutputs), contains("not empty") && contains("--overwrite"));
  REQUIRE_NOTHROW(prepare_output_directory(out, OutputMode::overwrite, kOutputs));
  REQUIRE_THROWS_WITH(prepare_output_directory(out / "vindex.h5", OutputMode::overwrite, kOutputs), contains("is not a directory"));
  fs::create_directory(out / "a.json");
  REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::overwrite, kOutputs), contains("a.json exists and is not a file"));
}

TEST_CASE("temporary files of a killed run do not block the next one", "[outputs]") {
  vindex_test::TempDir tmp;
  std::ofstream(tmp.path() / ".vindex.h5.partial-4242") << "half";
  REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::fresh, kOutputs));
  REQUIRE(fs::is_empty(tmp.path()));
  std::ofstream(tmp.path() / ".notes.partial-1") << "not ours";
  REQUIRE_THROWS_AS(prepare_output_directory(tmp.path(), OutputMode::fresh, kOutputs), UsageError);
}

TEST_CASE("a staged file appears under its name only when committed", "[outputs]") {
  vindex_test::TempDir tmp;
  {
    StagedFile f(tmp.path(), "x.json");
    write_file_synced(f.temp_path(), "{}");
    REQUIRE(fs::exists(f.temp_path()));
    REQUIRE_FALSE(fs::exists(tmp.path() / "x.json"));
  }  // abandoned: the temporary goes, nothing is left
  REQUIRE(fs::is_empty(tmp.path()));
  {
    StagedFile f(tmp.path(), "x.json");
    write_file_synced(f.temp_path(), "{\"a\":1}");
    f.commit();
  }
  std::ifstream in(tmp.path() / "x.json");
  std::string text;
  std::getline(in, text);
  REQUIRE(text == "{\"a\":1}");
  REQUIRE(entries(tmp.path()) == 1);
}

TEST_CASE("a set of files is committed all or none", "[outputs]") {
  vindex_test::TempDir tmp;
  fs::create_directory(tmp.path() / "b.json");  // a destination that cannot be replaced
  {
    StagedFile a(tmp.path(), "a.json"), b(tmp.path(), "b.json");
    write_file_synced(a.temp_path(), "1");
    write_file_synced(b.temp_path(), "2");
    const std::array<StagedFile*, 2> set{&a, &b};
    REQUIRE_THROWS_AS(commit_all(set), UsageError);
    REQUIRE_FALSE(a.committed());
  }
  REQUIRE_FALSE(fs::exists(tmp.path() / "a.json"));
  REQUIRE(entries(tmp.path()) == 1);  // only the obstacle; no temporary left
  fs::remove(tmp.path() / "b.json");
  {
    StagedFile a(tmp.path(), "a.json"), b(tmp.path(), "b.json");
    write_file_synced(a.temp_path(), "1");
    write_file_synced(b.temp_path(), "2");
    const std::array<StagedFile*, 2> set{&a, &b};
    commit_all(set);
  }
  REQUIRE(fs::exists(tmp.path() / "a.json"));
  REQUIRE(fs::exists(tmp.path() / "b.json"));
  REQUIRE(entries(tmp.path()) == 2);
}

TEST_CASE("the output directory is locked while a run holds it", "[outputs]") {
  vindex_test::TempDir tmp;
  const fs::path out = tmp.path() / "out";
  {
    const OutputLock held = prepare_output_directory(out, OutputMode::fresh, kOutputs);  // created, then locked
    REQUIRE(held.held());
    REQUIRE_THROWS_WITH(prepare_output_directory(out, OutputMode::overwrite, kOutputs),
                        contains("another vindex_mpi run is using this directory"));
  }
  REQUIRE_NOTHROW(prepare_output_directory(out, OutputMode::overwrite, kOutputs));  // released with the lock
}
