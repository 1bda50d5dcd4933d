// One rank's share of the work, computed by a backend on a thread of its own while the caller
// (the MPI progress loop) polls the counters: matrices done, failure, finished. Results are
// reduced to MatrixResults as they arrive, so the raw spectra never pile up, and appended to the
// rank's resume journal when there is one.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "vindex/format/checkpoint.hpp"
#include "vindex/run/backend.hpp"
#include "vindex/run/journal.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/results.hpp"

namespace vindex {

class RankComputation final : public SpectrumSink {
 public:
  // `journal` (may be null) must outlive the computation.
  RankComputation(SpectrumBackend& backend, const Checkpoint& checkpoint, const ModelLayout& layout,
                  std::span<const WorkItem> items, std::vector<int> ks, JournalWriter* journal = nullptr);
  ~RankComputation() override;  // asks the backend to stop and joins

  void start();
  void request_stop() noexcept { stop_.store(true); }
  void join();

  std::size_t done() const noexcept { return done_.load(); }
  bool failed() const noexcept { return failed_.load(); }
  bool finished() const noexcept { return finished_.load(); }
  // The first failure, if any (valid after join()).
  std::exception_ptr error() const;
  // The results in item order (valid after a successful join()).
  std::vector<MatrixResult> take_results();

  // SpectrumSink
  void deliver(std::size_t index, MatrixSpectrum&& spectrum) override;
  void fail(std::size_t index, std::exception_ptr error) override;
  bool should_stop() const override { return stop_.load() || failed_.load(); }

 private:
  void run() noexcept;

  SpectrumBackend& backend_;
  const Checkpoint& checkpoint_;
  const ModelLayout& layout_;
  std::span<const WorkItem> items_;
  std::vector<int> ks_;
  JournalWriter* journal_;
  std::vector<std::optional<MatrixResult>> results_;
  std::atomic<std::size_t> done_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex error_mutex_;
  std::exception_ptr error_;
  std::thread thread_;
};

// A view of one weight in its shard, ready to decode.
EncodedMatrix encode_weight(const Checkpoint& checkpoint, const WeightRef& weight,
                            const std::optional<BlockQuantization>& quantization);
// Views of the items' weights in their shards, ready for a backend.
std::vector<EncodedMatrix> encode_items(const Checkpoint& checkpoint, std::span<const WorkItem> items,
                                        const std::optional<BlockQuantization>& quantization);

// Re-reads every item's stored bytes with `threads` readers and compares their weight digest
// (MatrixDecoder::digest) with `expected` (same order). A mismatch is an InputError naming the
// tensor and `source` (where the expected digests come from): the results were computed from
// other bytes than the model's. Returns the bytes read.
std::uint64_t verify_weight_digests(const Checkpoint& checkpoint, const ModelLayout& layout,
                                    std::span<const WorkItem> items, std::span<const std::uint64_t> expected, int threads,
                                    const std::string& source);

}  // namespace vindex
