// The resume journal (records, torn tails, corruption, identity), the output directory's modes
// around it, layer slices, and vindex.h5 read back bit for bit (what merge relies on).
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/checksum.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/output/aggregate.hpp"
#include "vindex/output/hdf5_input.hpp"
#include "vindex/output/hdf5_output.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/run/journal.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/results.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

namespace {

RunIdentity identity() {
  return {"vindex_mpi test", "abc", "0123456789abcdef", "cpu", "auto", {16, 64}, {1}, {"down_proj"}, {0, 1, 2}};
}

MatrixResult random_result(std::mt19937_64& rng, const MatrixKey& key, std::uint64_t rows, std::uint64_t cols,
                           std::size_t k_count) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  MatrixResult r;
  r.key = key;
  r.rows = rows;
  r.cols = cols;
  r.gram_bits = u(rng) < 0.5 ? FloatBits::fp32 : FloatBits::fp64;
  r.eigen_bits = FloatBits::fp64;
  r.weight_digest = rng();
  for (std::uint64_t i = 0; i < std::min(rows, cols); ++i) r.singular_values.push_back(static_cast<float>(u(rng)));
  std::sort(r.singular_values.rbegin(), r.singular_values.rend());
  for (std::size_t i = 0; i < k_count; ++i) r.stats.var_at_k.push_back(u(rng));
  r.stats.top_sv = u(rng);
  r.stats.sv_ratio = u(rng) < 0.2 ? NAN : 1 + u(rng);
  r.stats.frobenius_norm = u(rng);
  r.stats.stable_rank = u(rng);
  r.stats.effective_rank = u(rng);
  return r;
}

bool same(const MatrixResult& a, const MatrixResult& b) {
  const auto bits_equal = [](double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; };
  return a.key == b.key && a.rows == b.rows && a.cols == b.cols && a.gram_bits == b.gram_bits &&
         a.eigen_bits == b.eigen_bits && a.weight_digest == b.weight_digest && a.singular_values == b.singular_values &&
         a.stats.var_at_k == b.stats.var_at_k && bits_equal(a.stats.top_sv, b.stats.top_sv) &&
         bits_equal(a.stats.sv_ratio, b.stats.sv_ratio) && bits_equal(a.stats.frobenius_norm, b.stats.frobenius_norm) &&
         bits_equal(a.stats.stable_rank, b.stats.stable_rank) && bits_equal(a.stats.effective_rank, b.stats.effective_rank);
}

std::vector<MatrixResult> some_results(std::size_t n) {
  std::mt19937_64 rng(5);
  std::vector<MatrixResult> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(random_result(rng, {1, MatrixRole::routed, Projection::down, static_cast<int>(i)}, 40, 24, 2));
  return out;
}

fs::path only_journal_file(const fs::path& out) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(out / kJournalDirectory)) found = e.path();
  return found;
}

}  // namespace

TEST_CASE("CRC-32 matches the published check value", "[journal]") {
  const std::string text = "123456789";
  REQUIRE(crc32(std::as_bytes(std::span(text.data(), text.size()))) == 0xCBF43926u);  // CRC-32/ISO-HDLC check
  REQUIRE(crc32({}) == 0u);
}

TEST_CASE("a journal gives back every result it was given, bit for bit", "[journal]") {
  vindex_test::TempDir tmp;
  const auto results = some_results(7);
  {
    JournalWriter w(tmp.path(), "run-1-rank-00000.vjl", identity(), 3600);
    for (std::size_t i = 0; i < 4; ++i) w.append(results[i]);
    w.flush();  // one record of 4
    for (std::size_t i = 4; i < 7; ++i) w.append(results[i]);
    REQUIRE(w.results_written() == 4);
  }  // the destructor writes the last 3
  const JournalContents back = read_journals(tmp.path(), identity());
  REQUIRE(back.files == 1);
  REQUIRE(back.torn_records == 0);
  REQUIRE(back.results.size() == results.size());
  for (std::size_t i = 0; i < results.size(); ++i) REQUIRE(same(back.results[i].result, results[i]));
}

TEST_CASE("the writer thread writes each batch once the interval has passed, with no call from the appender", "[journal]") {
  vindex_test::TempDir tmp;
  const auto results = some_results(5);
  JournalWriter w(tmp.path(), "j.vjl", identity(), 0.05);
  for (std::size_t i = 0; i < 3; ++i) w.append(results[i]);
  // No further append and no flush(): the batch must reach the disk anyway (a rank whose next
  // matrix takes minutes must not hold its finished ones in memory all that time).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (w.results_written() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(w.results_written() == 3);
  REQUIRE(read_journals(tmp.path(), identity()).results.size() == 3);
  w.append(results[3]);
  w.append(results[4]);
  w.flush();
  REQUIRE(w.results_written() == 5);
  const JournalContents back = read_journals(tmp.path(), identity());
  REQUIRE(back.results.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) REQUIRE(same(back.results[i].result, results[i]));
}

// A batch the writer thread cannot write (here: the file size limit, EFBIG; on a cluster a full
// disk) is not lost in that thread: the next append() and flush() rethrow it, naming the file, with
// the I/O exit code, so the rank's computation fails and every rank agrees on it.
TEST_CASE("a write that fails on the writer thread is rethrown by append and flush", "[journal]") {
  vindex_test::TempDir tmp;
  const auto results = some_results(3);
  struct Limit {  // the file size limit and SIGXFSZ, restored however the test ends
    rlimit old{};
    void (*old_handler)(int) = nullptr;
    explicit Limit(rlim_t bytes) {
      REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
      old_handler = std::signal(SIGXFSZ, SIG_IGN);
      rlimit lower = old;
      lower.rlim_cur = bytes;
      REQUIRE(setrlimit(RLIMIT_FSIZE, &lower) == 0);
    }
    ~Limit() {
      setrlimit(RLIMIT_FSIZE, &old);
      std::signal(SIGXFSZ, old_handler);
    }
  };
  JournalWriter w(tmp.path(), "j.vjl", identity(), 0.01);
  const auto identity_bytes = static_cast<rlim_t>(fs::file_size(w.path()));
  std::string message;
  {
    const Limit limit(identity_bytes + 16);  // no results record fits
    w.append(results[0]);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (message.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      try {
        w.append(results[1]);
      } catch (const IoError& e) {
        message = e.what();
        REQUIRE(e.code() == ExitCode::internal);
      }
    }
  }
  REQUIRE_THAT(message, contains("j.vjl"));
  REQUIRE_THROWS_AS(w.flush(), IoError);
  REQUIRE(w.results_written() == 0);
  REQUIRE(fs::file_size(w.path()) == identity_bytes);  // the failed batch's fragment was cut off
}

TEST_CASE("reading stops at a torn or damaged record; a well-formed record of wrong content is refused", "[journal]") {
  vindex_test::TempDir tmp;
  const auto results = some_results(6);
  {
    JournalWriter w(tmp.path(), "j.vjl", identity(), 3600);
    for (std::size_t i = 0; i < 3; ++i) w.append(results[i]);
    w.flush();
    for (std::size_t i = 3; i < 6; ++i) w.append(results[i]);
    w.flush();
  }
  const fs::path file = only_journal_file(tmp.path());
  const auto size = fs::file_size(file);

  SECTION("torn final record") {
    fs::resize_file(file, size - 10);
    const JournalContents back = read_journals(tmp.path(), identity());
    REQUIRE(back.torn_records == 1);
    REQUIRE(back.results.size() == 3);
    REQUIRE(same(back.results[2].result, results[2]));
  }
  SECTION("torn record header") {
    std::vector<std::byte> extra(10, std::byte{0x56});
    std::ofstream(file, std::ios::binary | std::ios::app).write(reinterpret_cast<const char*>(extra.data()), 10);
    REQUIRE(read_journals(tmp.path(), identity()).results.size() == 6);
  }
  SECTION("a flipped byte in the first results record: it and everything after are recomputed") {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    // Past the identity record's header and payload, into the first results payload.
    const std::string text = identity().to_json().dump();
    f.seekp(static_cast<std::streamoff>(2 * kJournalRecordHeaderBytes + text.size() + 40));
    f.put('\x7f');
    f.close();
    const JournalContents back = read_journals(tmp.path(), identity());
    REQUIRE(back.torn_records == 1);
    REQUIRE(back.results.empty());
  }
  SECTION("a zero-filled final record (a crashed network file system)") {
    const std::vector<char> zeros(200, 0);
    std::ofstream(file, std::ios::binary | std::ios::app).write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    const JournalContents back = read_journals(tmp.path(), identity());
    REQUIRE(back.torn_records == 1);
    REQUIRE(back.results.size() == 6);
  }
  SECTION("not a journal at all: nothing in it is used") {
    std::ofstream(tmp.path() / kJournalDirectory / "x.vjl") << "this is not a journal, but it is long enough";
    const JournalContents back = read_journals(tmp.path(), identity());
    REQUIRE(back.files == 2);
    REQUIRE(back.results.size() == 6);
  }
  SECTION("well-formed records in the wrong order are refused") {
    std::vector<std::byte> bytes, payload;
    encode_results(std::span(results).first(1), payload);
    append_journal_record(bytes, JournalRecordKind::results, payload);  // results before any identity
    std::ofstream(tmp.path() / kJournalDirectory / "y.vjl", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE_THROWS_WITH(read_journals(tmp.path(), identity()), contains("y.vjl") && contains("no run identity first"));
  }
}

TEST_CASE("a FIFO in the journal directory is refused without blocking", "[journal][hostile]") {
  vindex_test::TempDir tmp;
  { JournalWriter w(tmp.path(), "j.vjl", identity(), 1); }
  REQUIRE(::mkfifo((tmp.path() / kJournalDirectory / "k.vjl").c_str(), 0644) == 0);
  REQUIRE_THROWS_AS(read_journals(tmp.path(), identity()), UsageError);
  REQUIRE_THROWS_WITH(read_journals(tmp.path(), identity()), contains("k.vjl") && contains("not a regular journal file"));
}

TEST_CASE("a journal of another run is refused, naming what differs", "[journal]") {
  vindex_test::TempDir tmp;
  { JournalWriter w(tmp.path(), "j.vjl", identity(), 1); }
  RunIdentity other = identity();
  other.ks = {32};
  REQUIRE_THROWS_WITH(read_journals(tmp.path(), other), contains("different run") && contains("k: recorded [16,64]"));
  other = identity();
  other.model_fingerprint = "ffffffffffffffff";
  REQUIRE_THROWS_WITH(read_journals(tmp.path(), other), contains("model_fingerprint"));
  other = identity();
  other.git_commit = "def";
  REQUIRE_THROWS_WITH(read_journals(tmp.path(), other), contains("git_commit"));
  REQUIRE(read_journals(tmp.path(), identity()).files == 1);
  // No directory: nothing to resume.
  vindex_test::TempDir empty;
  REQUIRE(read_journals(empty.path(), identity()).results.empty());
}

TEST_CASE("the output directory keeps, refuses or discards a journal by mode", "[journal][outputs]") {
  vindex_test::TempDir tmp;
  { JournalWriter w(tmp.path(), "j.vjl", identity(), 1); }
  REQUIRE_THROWS_WITH(prepare_output_directory(tmp.path(), OutputMode::fresh),
                      contains("unfinished run") && contains("--resume") && contains("--overwrite"));
  REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::resume));
  REQUIRE(fs::exists(tmp.path() / kJournalDirectory));
  REQUIRE_NOTHROW(prepare_output_directory(tmp.path(), OutputMode::overwrite));
  REQUIRE_FALSE(fs::exists(tmp.path() / kJournalDirectory));

  std::ofstream(tmp.path() / "elsewhere") << "x";
  fs::create_symlink(tmp.path() / "elsewhere", tmp.path() / "vindex.h5");
  REQUIRE_THROWS_WITH(prepare_output_directory(tmp.path(), OutputMode::overwrite), contains("symbolic link"));
}

TEST_CASE("a results record whose checksum holds but which cannot be decoded is skipped and reported", "[journal]") {
  vindex_test::TempDir tmp;
  const auto results = some_results(3);
  {
    JournalWriter w(tmp.path(), "j.vjl", identity(), 3600);
    w.append(results[0]);
  }
  // A record with a valid CRC whose payload is of another encoding version, then a good one.
  std::vector<std::byte> bytes, payload;
  encode_results(std::span(results).subspan(1, 1), payload);
  payload[0] = std::byte{99};
  append_journal_record(bytes, JournalRecordKind::results, payload);
  payload.clear();
  encode_results(std::span(results).subspan(2, 1), payload);
  append_journal_record(bytes, JournalRecordKind::results, payload);
  std::ofstream(only_journal_file(tmp.path()), std::ios::binary | std::ios::app)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  const JournalContents back = read_journals(tmp.path(), identity());
  REQUIRE(back.skipped.size() == 1);
  REQUIRE_THAT(back.skipped[0], contains("j.vjl") && contains("cannot be decoded") && contains("recomputed"));
  REQUIRE(back.results.size() == 2);
  REQUIRE(same(back.results[0].result, results[0]));
  REQUIRE(same(back.results[1].result, results[2]));
}

TEST_CASE("a journal result that does not fit the plan is refused, with the reason", "[journal]") {
  // What --resume checks before reusing a journal entry (result_problem): results that pass the
  // CRC but could not have been computed by this build for this matrix.
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  const std::vector<WorkItem> plan = plan_items(layout, ckpt, std::vector<int>{1}, PlanRequest{});
  const WorkItem& item = plan.at(0);
  const std::uint64_t n = std::min(item.weight.rows, item.weight.cols);
  MatrixResult good;
  good.key = item.key;
  good.rows = item.weight.rows;
  good.cols = item.weight.cols;
  for (std::uint64_t i = 0; i < n; ++i) good.singular_values.push_back(static_cast<float>(n - i));
  good.stats.top_sv = static_cast<double>(n);
  good.stats.frobenius_norm = 1e4;
  good.stats.var_at_k = {0.25, 0.5};
  REQUIRE(result_problem(good, item, 2).empty());
  MatrixResult r = good;
  r.rows += 1;
  REQUIRE_THAT(result_problem(r, item, 2), contains("shape"));
  r = good;
  r.singular_values.push_back(0.0f);
  REQUIRE_THAT(result_problem(r, item, 2), contains("singular values, not"));
  r = good;
  r.singular_values[5] = NAN;
  REQUIRE_THAT(result_problem(r, item, 2), contains("singular value 5"));
  r = good;
  std::reverse(r.singular_values.begin(), r.singular_values.end());
  REQUIRE_THAT(result_problem(r, item, 2), contains("ascend"));
  r = good;
  r.stats.var_at_k[1] = 7.5;
  REQUIRE_THAT(result_problem(r, item, 2), contains("outside [0, 1]"));
  r = good;
  r.stats.var_at_k[0] = -0.1;
  REQUIRE_THAT(result_problem(r, item, 2), contains("outside [0, 1]"));
  r = good;
  REQUIRE_THAT(result_problem(r, item, 3), contains("var@k values"));
  r = good;
  r.stats.top_sv = 2.0;
  REQUIRE_THAT(result_problem(r, item, 2), contains("top singular value"));
}

TEST_CASE("layer slices cover every layer once, in order, balanced by cost", "[journal][plan]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  const std::vector<int> layers{0, 1, 2, 3};
  const std::vector<WorkItem> items = plan_items(layout, ckpt, layers, PlanRequest{});
  for (int count = 1; count <= 4; ++count) {
    std::vector<int> joined;
    for (int i = 0; i < count; ++i) {
      const std::vector<int> slice = slice_layers(items, layers, i, count);
      REQUIRE_FALSE(slice.empty());
      joined.insert(joined.end(), slice.begin(), slice.end());
    }
    REQUIRE(joined == layers);
  }
  // Two slices: the dense layer 0 (one 200x300 matrix) is cheap beside 9 MoE matrices per layer,
  // so the cut falls after layer 1, not in the middle of the list.
  REQUIRE(slice_layers(items, layers, 0, 2) == std::vector<int>{0, 1});
}

TEST_CASE("vindex.h5 reads back into the results it was written from, bit for bit", "[journal][hdf5]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  const std::vector<int> layers{0, 1, 3};
  const std::vector<WorkItem> plan = plan_items(layout, ckpt, layers, PlanRequest{});
  std::mt19937_64 rng(11);
  std::vector<MatrixResult> results;
  for (const WorkItem& item : plan) results.push_back(random_result(rng, item.key, item.weight.rows, item.weight.cols, 2));
  const std::vector<int> ks{16, 64};
  const VindexTables tables = assemble_tables(results, plan, layout, ks);

  vindex_test::TempDir tmp;
  const std::vector<std::byte> image = vindex_h5_image(tables, {"model \xc3\xa9", "tool", "{\"p\":1}", "0123abcd"});
  std::ofstream(tmp.path() / "v.h5", std::ios::binary)
      .write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  VindexFileContents back = read_vindex_h5(tmp.path() / "v.h5");
  REQUIRE(back.run_id == "0123abcd");
  REQUIRE(read_vindex_run_id(tmp.path() / "v.h5") == "0123abcd");
  REQUIRE(back.model == "model \xc3\xa9");
  REQUIRE(back.provenance_json == "{\"p\":1}");
  REQUIRE(back.ks == std::vector<int>{16, 64});
  REQUIRE(back.results.size() == results.size());
  const auto by_key = [](const MatrixResult& a, const MatrixResult& b) { return a.key < b.key; };
  std::sort(results.begin(), results.end(), by_key);
  std::sort(back.results.begin(), back.results.end(), by_key);
  for (std::size_t i = 0; i < results.size(); ++i) REQUIRE(same(back.results[i], results[i]));

  std::ofstream(tmp.path() / "not.h5") << "plain text";
  REQUIRE_THROWS_WITH(read_vindex_h5(tmp.path() / "not.h5"), contains("not.h5") && contains("not an HDF5 file"));
}
