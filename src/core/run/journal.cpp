// Writing and reading the resume journal (format in journal.hpp).
#include "vindex/run/journal.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include <unistd.h>

#include <fmt/format.h>

#include "vindex/base/checksum.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMaxRecordPayload = 1ull << 32;  // a batch of results is far smaller

template <typename T>
void put_le(std::byte* out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<std::byte>(static_cast<std::uint64_t>(value) >> (8 * i));
}

template <typename T>
T get_le(const std::byte* in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return static_cast<T>(v);
}

[[noreturn]] void corrupt(const fs::path& file, std::uint64_t offset, const std::string& what) {
  throw UsageError(fmt::format("--out: journal {}: {} at byte {}; it was not written by this vindex_mpi -- pass "
                               "--overwrite to start over, or remove that file to recompute only its matrices",
                               file.string(), what, offset));
}

// One journal file: its identity and results. Stops at an incomplete final record.
struct ParsedJournal {
  nlohmann::json identity;
  std::vector<MatrixResult> results;
  std::vector<std::string> skipped;
  bool torn = false;
};

// Reading stops at the first record that is incomplete or damaged: every record before it was
// synced to disk before the next was written, so only the last write of a crashed writer (or a
// damaged disk) can be bad, and stopping there costs recomputation, never a wrong value.
ParsedJournal parse_journal(const fs::path& file) {
  const FileDescriptor fd = FileDescriptor::open_read(file, LinkPolicy::refuse);
  const std::uint64_t size = fd.size();
  ParsedJournal parsed;
  std::uint64_t offset = 0;
  bool have_identity = false;
  std::vector<std::byte> payload;
  while (offset < size) {
    if (size - offset < kJournalRecordHeaderBytes) {
      parsed.torn = true;
      break;
    }
    std::array<std::byte, kJournalRecordHeaderBytes> header{};
    fd.read_exact(header.data(), header.size(), offset);
    const auto magic = get_le<std::uint32_t>(header.data());
    const auto kind = get_le<std::uint32_t>(header.data() + 4);
    const auto length = get_le<std::uint64_t>(header.data() + 8);
    const auto crc = get_le<std::uint32_t>(header.data() + 16);
    if (magic != kJournalMagic || length > kMaxRecordPayload || length > size - offset - kJournalRecordHeaderBytes) {
      parsed.torn = true;
      break;
    }
    const std::uint64_t end = offset + kJournalRecordHeaderBytes + length;
    payload.resize(length);
    fd.read_exact(payload.data(), length, offset + kJournalRecordHeaderBytes);
    if (crc32(payload) != crc) {
      parsed.torn = true;
      break;
    }
    // A record whose checksum holds was written by vindex_mpi: anything wrong inside it is refused.
    if (!have_identity) {
      if (kind != static_cast<std::uint32_t>(JournalRecordKind::identity)) corrupt(file, offset, "no run identity first");
      try {
        parsed.identity = parse_json_strict(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
                                            file.string());
      } catch (const std::exception& e) {
        corrupt(file, offset, fmt::format("unreadable run identity ({})", e.what()));
      }
      have_identity = true;
    } else if (kind == static_cast<std::uint32_t>(JournalRecordKind::results)) {
      try {
        std::vector<MatrixResult> batch = decode_results(payload);
        for (MatrixResult& r : batch) parsed.results.push_back(std::move(r));
      } catch (const std::exception& e) {
        // Whole, but not what this build writes: its matrices are recomputed, never guessed at.
        parsed.skipped.push_back(fmt::format("journal {}: record at byte {} cannot be decoded ({}); its matrices are "
                                             "recomputed",
                                             file.string(), offset, e.what()));
      }
    } else {
      corrupt(file, offset, fmt::format("unknown record kind {}", kind));
    }
    offset = end;
  }
  return parsed;
}

}  // namespace

void append_journal_record(std::vector<std::byte>& bytes, JournalRecordKind kind, std::span<const std::byte> payload) {
  std::array<std::byte, kJournalRecordHeaderBytes> header{};
  put_le<std::uint32_t>(header.data(), kJournalMagic);
  put_le<std::uint32_t>(header.data() + 4, static_cast<std::uint32_t>(kind));
  put_le<std::uint64_t>(header.data() + 8, payload.size());
  put_le<std::uint32_t>(header.data() + 16, crc32(payload));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), payload.begin(), payload.end());
}

JournalWriter::JournalWriter(const fs::path& out_dir, const std::string& file_name, const RunIdentity& identity,
                             double flush_seconds)
    : path_(out_dir / kJournalDirectory / file_name),
      interval_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(flush_seconds))),
      last_flush_(std::chrono::steady_clock::now()) {
  std::error_code ec;
  fs::create_directories(path_.parent_path(), ec);
  if (ec) throw IoError(path_.parent_path().string(), "cannot create the journal directory: " + ec.message());
  fd_ = FileDescriptor::create_exclusive(path_);
  const std::string text = identity.to_json().dump();
  {
    const std::lock_guard file(file_mutex_);
    write_record(JournalRecordKind::identity, std::as_bytes(std::span(text.data(), text.size())));
  }
  writer_ = std::thread([this] { writer_loop(); });
}

JournalWriter::~JournalWriter() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  try {
    flush();
  } catch (...) {  // the journal is an aid: losing its last batch only costs recomputation
  }
}

// Waits for a result, then for the batch interval to pass since the last batch, then writes the
// queue; until stopped. A failure is kept for append() and flush() to rethrow, and ends the loop.
void JournalWriter::writer_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_ && !error_) {
    wake_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (stop_) break;
    wake_.wait_until(lock, last_flush_ + interval_, [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    try {
      flush();
    } catch (...) {  // kept in error_ by flush()
    }
    lock.lock();
  }
}

void JournalWriter::write_record(JournalRecordKind kind, std::span<const std::byte> payload) {
  if (broken_) throw IoError(path_.string(), "an earlier write failed; the journal takes no more records");
  std::vector<std::byte> bytes;
  bytes.reserve(kJournalRecordHeaderBytes + payload.size());
  append_journal_record(bytes, kind, payload);
  const std::uint64_t before = fd_.size();
  try {
    fd_.append_all(bytes);  // one write: a kill leaves at most this record incomplete
    fd_.sync_data();
  } catch (...) {
    // A short write (disk full) must not leave a fragment that a later record would follow.
    broken_ = true;
    if (::ftruncate(fd_.get(), static_cast<off_t>(before)) == 0) ::fdatasync(fd_.get());
    throw;
  }
}

void JournalWriter::append(const MatrixResult& result) {
  bool first = false;
  {
    const std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    first = pending_.empty();
    pending_.push_back(result);
  }
  if (first) wake_.notify_all();
}

void JournalWriter::flush() {
  const std::lock_guard file(file_mutex_);
  std::vector<MatrixResult> batch;
  {
    const std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    batch.swap(pending_);
    last_flush_ = std::chrono::steady_clock::now();
  }
  if (batch.empty()) return;
  try {
    std::vector<std::byte> payload;
    encode_results(batch, payload);
    write_record(JournalRecordKind::results, payload);
  } catch (...) {
    const std::lock_guard lock(mutex_);
    error_ = std::current_exception();
    throw;
  }
  const std::lock_guard lock(mutex_);
  written_ += batch.size();
}

std::size_t JournalWriter::results_written() const {
  const std::lock_guard lock(mutex_);
  return written_;
}

JournalContents read_journals(const fs::path& out_dir, const RunIdentity& expected) {
  JournalContents contents;
  const fs::path dir = out_dir / kJournalDirectory;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return contents;
  if (!fs::is_directory(fs::symlink_status(dir, ec)))
    throw UsageError(fmt::format("--out: {} exists and is not a directory", dir.string()));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec) || entry.is_symlink(ec))
      throw UsageError(fmt::format("--out: {} is not a regular journal file", entry.path().string()));
    files.push_back(entry.path());
  }
  if (ec) throw IoError(dir.string(), "cannot be read: " + ec.message());
  std::sort(files.begin(), files.end());

  for (const fs::path& file : files) {
    ParsedJournal parsed = parse_journal(file);
    ++contents.files;
    if (parsed.torn) ++contents.torn_records;
    if (parsed.identity.is_null()) continue;  // created, killed before its first record landed
    if (const std::string diff = identity_difference(parsed.identity, expected); !diff.empty())
      throw UsageError(fmt::format("--out: journal {} belongs to a different run ({}); resume with the same model, "
                                   "options and vindex_mpi build, or pass --overwrite to start over",
                                   file.string(), diff));
    for (MatrixResult& r : parsed.results) contents.results.push_back({std::move(r), file.string()});
    for (std::string& s : parsed.skipped) contents.skipped.push_back(std::move(s));
  }
  return contents;
}

}  // namespace vindex
