// Output directory rules and write-then-rename staging.
#include <fstream>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/errors.hpp"
#include "vindex/output_files.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

TEST_CASE("the output directory must be absent, empty, or --overwrite", "[outputs]") {
  vindex_test::TempDir tmp;
  const fs::path out = tmp.path() / "a" / "b";
  prepare_output_directory(out, false);
  REQUIRE(fs::is_directory(out));
  prepare_output_directory(out, false);  // empty: fine
  std::ofstream(out / "vindex.h5") << "old";
  REQUIRE_THROWS_AS(prepare_output_directory(out, false), UsageError);
  REQUIRE_THROWS_WITH(prepare_output_directory(out, false), contains("not empty") && contains("--overwrite"));
  REQUIRE_NOTHROW(prepare_output_directory(out, true));
  REQUIRE_THROWS_WITH(prepare_output_directory(out / "vindex.h5", true), contains("is not a directory"));
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
  REQUIRE(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);
}
