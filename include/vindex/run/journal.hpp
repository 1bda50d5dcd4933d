// The resume journal: each rank appends the results it finishes to a file of its own under
// --out/.vindex-journal/, in checksummed records flushed to disk in batches, so that a run that is
// killed, preempted or loses a node can be finished with --resume instead of started over.
//
// File: a sequence of records, each a 24-byte little-endian header -- magic "VJNL", kind (1: the
// run identity as JSON, always first; 2: results, encode_results bytes), payload size, CRC-32 of
// the payload, 4 reserved zero bytes -- and the payload. Reading stops at the first incomplete or
// damaged record (a crashed writer's last write; what follows is recomputed). A results record whose
// checksum holds but which cannot be decoded is skipped and reported (its matrices are recomputed);
// the caller checks every decoded result against the plan before reusing it (results.hpp,
// result_problem). A journal whose identity record is unreadable is refused.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vindex/base/file_descriptor.hpp"
#include "vindex/run/results.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex {

inline constexpr const char* kJournalDirectory = ".vindex-journal";
inline constexpr std::uint32_t kJournalMagic = 0x4C4E4A56;  // "VJNL"
inline constexpr std::size_t kJournalRecordHeaderBytes = 24;

enum class JournalRecordKind : std::uint32_t { identity = 1, results = 2 };

class JournalWriter {
 public:
  // Creates out_dir/.vindex-journal/file_name (which must not exist), writes the identity and
  // starts the writer thread.
  JournalWriter(const std::filesystem::path& out_dir, const std::string& file_name, const RunIdentity& identity,
                double flush_seconds);
  ~JournalWriter();  // stops the writer thread, then writes what is pending, best effort
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Thread-safe and cheap: queues the result. The writer thread writes and syncs the queue as one
  // record once flush_seconds have passed since the last batch, so the compute (or GPU-feeding)
  // threads never wait on the disk (fdatasync takes long on a loaded parallel filesystem). A
  // failed write of an earlier batch is rethrown here (and by flush()).
  void append(const MatrixResult& result);
  // Thread-safe. Writes what is queued as one record and syncs it to disk, on the caller's thread.
  void flush();
  const std::filesystem::path& path() const { return path_; }
  std::size_t results_written() const;

 private:
  void writer_loop();
  void write_record(JournalRecordKind kind, std::span<const std::byte> payload);  // holds file_mutex_

  std::filesystem::path path_;
  FileDescriptor fd_;
  std::chrono::steady_clock::duration interval_;
  std::mutex file_mutex_;  // the file: one batch written at a time; taken before mutex_
  bool broken_ = false;    // (file_mutex_) a write failed: no record may follow its truncated fragment
  mutable std::mutex mutex_;  // the queue and the writer thread's state
  std::condition_variable wake_;
  std::vector<MatrixResult> pending_;
  std::chrono::steady_clock::time_point last_flush_;
  std::size_t written_ = 0;
  std::exception_ptr error_;  // the writer thread's failure, rethrown by append and flush
  bool stop_ = false;
  std::thread writer_;  // last: started after everything above is initialised
};

struct JournalContents {
  struct Entry {
    MatrixResult result;
    std::string file;  // the journal it came from
  };
  std::vector<Entry> results;         // in file and record order; a matrix may appear more than once
  std::vector<std::string> skipped;   // records that could not be decoded, one message each
  std::size_t files = 0;
  std::size_t torn_records = 0;       // incomplete final records of killed writers, ignored
};

// Reads every journal under out_dir/.vindex-journal. A journal of a different run identity, or one
// that is corrupt, is a UsageError naming the file (the output directory is the problem).
JournalContents read_journals(const std::filesystem::path& out_dir, const RunIdentity& expected);

// Appends one record to `bytes` (exposed for the tests and the fuzzer's seeds).
void append_journal_record(std::vector<std::byte>& bytes, JournalRecordKind kind, std::span<const std::byte> payload);

}  // namespace vindex
