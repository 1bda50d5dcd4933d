// Command-line parsing: list syntaxes and one-line usage errors.
#include <filesystem>

#include "app/options.hpp"
#include "catch_compat.hpp"
#include "vindex/base/errors.hpp"

using namespace vindex;
using vindex::app::parse_command_line;
using vindex_test::contains;

namespace {

app::ParseResult parse(std::vector<std::string> args) {
  args.insert(args.begin(), "vindex_mpi");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("layer lists accept single layers and ranges", "[options]") {
  REQUIRE(app::parse_layer_list("0,1,15-20") == std::set<int>{0, 1, 15, 16, 17, 18, 19, 20});
  REQUIRE(app::parse_layer_list("3,3,2-3") == std::set<int>{2, 3});
  for (const char* bad : {"", "1,,2", "a", "-3", "5-2", "1.5", "2-"})
    REQUIRE_THROWS_AS(app::parse_layer_list(bad), UsageError);
}

TEST_CASE("k lists accept positive integers", "[options]") {
  REQUIRE(app::parse_k_list("128,64,64") == std::vector<int>{64, 128});
  REQUIRE_THROWS_WITH(app::parse_k_list("0"), contains("at least 1"));
  REQUIRE_THROWS_AS(app::parse_k_list("64,x"), UsageError);
}

TEST_CASE("the command line is parsed into options", "[options]") {
  const auto r = parse({"--model", "m", "--out", "o", "--layers", "1-2", "--k", "16,64", "--threads", "3",
                        "--precision", "fp64", "--overwrite"});
  REQUIRE(r.options);
  REQUIRE(r.options->model == "m");
  REQUIRE(r.options->request.ks == std::vector<int>{16, 64});
  REQUIRE(r.options->threads == 3);
  REQUIRE(r.options->request.precision == PrecisionPolicy::fp64);
  REQUIRE(r.options->request.layers == std::set<int>{1, 2});
  REQUIRE(r.options->request.backend == BackendChoice::cpu);
  REQUIRE(r.options->request.phases == std::vector<int>{1});
  REQUIRE(r.options->request.plan().projections == std::vector<Projection>{Projection::down});
  REQUIRE(r.options->overwrite);
  REQUIRE_FALSE(r.options->dry_run);
  REQUIRE_FALSE(parse({"--model", "m", "--out", "o"}).options->request.layers);
  REQUIRE_THROWS_WITH(r.options->request.selected_layers(2), contains("layer 2 does not exist"));
  REQUIRE(r.options->request.selected_layers(3) == std::vector<int>{1, 2});
}

TEST_CASE("bad arguments are one-line usage errors", "[options]") {
  REQUIRE_THROWS_AS(parse({"--out", "o"}), UsageError);                         // --model missing
  REQUIRE_THROWS_WITH(parse({"--model", "m"}), contains("--out is required"));   // and no --dry-run
  REQUIRE_THROWS_AS(parse({"--model", "m", "--out", "o", "--backend", "tpu"}), UsageError);
  REQUIRE_THROWS_AS(parse({"--model", "m", "--out", "o", "--layers", "x"}), UsageError);
  REQUIRE_THROWS_AS(parse({"--model", "m", "--out", "o", "--bogus"}), UsageError);
  REQUIRE_NOTHROW(parse({"--model", "m", "--dry-run"}));
  REQUIRE(parse({"--help"}).help_text.find("--layers") != std::string::npos);
}

TEST_CASE("slices, resume and the journal interval are parsed and checked", "[options]") {
  REQUIRE(app::parse_slice("2/8") == std::pair{2, 8});
  for (const char* bad : {"8/8", "1", "/3", "a/3", "-1/3", "0/0"}) REQUIRE_THROWS_AS(app::parse_slice(bad), UsageError);
  const auto r = parse({"--model", "m", "--out", "o", "--slice", "1/3", "--resume", "--journal-seconds", "5"});
  REQUIRE(r.options->request.slice == std::pair{1, 3});
  REQUIRE(r.options->resume);
  REQUIRE(r.options->journal_seconds == 5);
  REQUIRE_THROWS_WITH(parse({"--model", "m", "--out", "o", "--resume", "--overwrite"}), contains("contradict"));
  REQUIRE_THROWS_AS(parse({"--model", "m", "--out", "o", "--journal-seconds", "0"}), UsageError);
}

TEST_CASE("every job file in jobs/ is read by --config", "[options]") {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(VINDEX_JOBS_DIR)) {
    if (entry.path().extension() != ".toml") continue;
    ++files;
    const auto r = parse({"--config", entry.path().string()});
    INFO(entry.path().string());
    REQUIRE(r.options);
    REQUIRE_FALSE(r.options->model.empty());
    REQUIRE_FALSE(r.options->out.empty());
  }
  REQUIRE(files >= 3);
}
