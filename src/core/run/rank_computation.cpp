// Running a backend over a rank's items on a background thread.
#include "vindex/run/rank_computation.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/parallel_for.hpp"
#include "vindex/model/dequantize.hpp"

namespace vindex {

EncodedMatrix encode_weight(const Checkpoint& ckpt, const WeightRef& weight,
                            const std::optional<BlockQuantization>& quantization) {
  EncodedMatrix m;
  m.weight = ckpt.view(*weight.weight);
  if (weight.scale) m.scale = ckpt.view(*weight.scale);
  m.encoding = weight.encoding;
  m.rows = weight.stored_rows();
  m.cols = weight.stored_cols();
  m.slice = weight.slice;
  if (m.encoding == WeightEncoding::fp8_block || ckpt.view(*weight.weight).info().dtype == DType::F8_E4M3) {
    // The rows x cols one scale covers (the whole matrix, a row, or a block), and the dtype the
    // product is rounded to.
    const BlockQuantization q = quantization.value_or(BlockQuantization{});
    const auto [br, bc] = q.scale_block(m.rows, m.cols);
    if (br > UINT32_MAX || bc > UINT32_MAX)
      throw InputError(m.weight.file(), m.weight.name(), fmt::format("a {}x{} scale block is too large", br, bc));
    m.block_rows = static_cast<std::uint32_t>(br);
    m.block_cols = static_cast<std::uint32_t>(bc);
    if (q.product_in_scale_dtype && m.scale) m.product_dtype = m.scale->info().dtype;
  } else if ((m.encoding == WeightEncoding::gptq || m.encoding == WeightEncoding::awq) && quantization) {
    // The inputs (columns) a group of scales and zero points covers; -1 is one group.
    m.zeros = ckpt.view(*weight.zeros);
    if (weight.g_idx) m.g_idx = ckpt.view(*weight.g_idx);
    m.group_size = quantization->group_size == -1 ? m.cols : static_cast<std::uint64_t>(quantization->group_size);
    m.zeros_minus_one = quantization->zeros_minus_one;
    m.desc_act = quantization->desc_act;
    m.product_dtype = m.scale->info().dtype;
  } else if (quantization) {
    m.block_rows = quantization->block_rows;
    m.block_cols = quantization->block_cols;
  }
  return m;
}

std::vector<EncodedMatrix> encode_items(const Checkpoint& ckpt, std::span<const WorkItem> items,
                                        const std::optional<BlockQuantization>& quantization) {
  std::vector<EncodedMatrix> out;
  out.reserve(items.size());
  for (const WorkItem& item : items) out.push_back(encode_weight(ckpt, item.weight, quantization));
  return out;
}

std::uint64_t verify_weight_digests(const Checkpoint& ckpt, const ModelLayout& layout, std::span<const WorkItem> items,
                                    std::span<const std::uint64_t> expected, int threads, const std::string& source) {
  VINDEX_ASSERT(items.size() == expected.size());
  std::vector<std::vector<std::byte>> buffers(static_cast<std::size_t>(std::max(threads, 1)));
  std::atomic<std::uint64_t> bytes{0};
  parallel_for(items.size(), threads, [&](std::size_t i, std::size_t worker) {
    const EncodedMatrix m = encode_weight(ckpt, items[i].weight, layout.quantization);
    const MatrixDecoder decoder(m, buffers[worker]);
    bytes.fetch_add(decoder.weight_bytes().size());
    if (decoder.digest() != expected[i])
      throw InputError(m.weight.file(), m.weight.name(),
                       fmt::format("its bytes now have weight digest {:016x}, but {} recorded {:016x} for layer {} {} "
                                   "expert {}: the results were computed from a different model, or the model "
                                   "changed since",
                                   decoder.digest(), source, expected[i], items[i].key.layer, items[i].key.group(),
                                   items[i].key.expert));
  });
  return bytes.load();
}

RankComputation::RankComputation(SpectrumBackend& backend, const Checkpoint& checkpoint, const ModelLayout& layout,
                                 std::span<const WorkItem> items, std::vector<int> ks, JournalWriter* journal)
    : backend_(backend), checkpoint_(checkpoint), layout_(layout), items_(items), ks_(std::move(ks)), journal_(journal),
      results_(items.size()) {}

RankComputation::~RankComputation() {
  request_stop();
  join();
}

void RankComputation::start() {
  VINDEX_ASSERT(!thread_.joinable());
  thread_ = std::thread([this] { run(); });
}

void RankComputation::join() {
  if (thread_.joinable()) thread_.join();
}

void RankComputation::run() noexcept {
  try {
    const std::vector<EncodedMatrix> matrices = encode_items(checkpoint_, items_, layout_.quantization);
    backend_.compute(matrices, *this);
  } catch (...) {
    fail(items_.size(), std::current_exception());
  }
  finished_.store(true);
}

void RankComputation::deliver(std::size_t index, MatrixSpectrum&& spectrum) {
  try {
    results_.at(index) = make_matrix_result(items_[index], spectrum, ks_);
    if (journal_) journal_->append(*results_[index]);  // a journal that cannot be written fails the run
    done_.fetch_add(1);
  } catch (...) {
    fail(index, std::current_exception());
  }
}

void RankComputation::fail(std::size_t index, std::exception_ptr error) {
  // A library failure in matrix `index` that the backend did not name is named here: the job's
  // error message must say which tensor it was computing.
  if (index < items_.size()) {
    try {
      std::rethrow_exception(error);
    } catch (const LibraryError& e) {
      if (!e.names_tensor()) {
        try {
          const TensorView weight = checkpoint_.view(*items_[index].weight.weight);
          error = std::make_exception_ptr(LibraryError(e, weight.file(), weight.name()));
        } catch (...) {  // naming it failed: the unnamed error stands
        }
      }
    } catch (...) {
    }
  }
  const std::lock_guard lock(error_mutex_);
  if (!error_) error_ = std::move(error);
  failed_.store(true);
}

std::exception_ptr RankComputation::error() const {
  const std::lock_guard lock(error_mutex_);
  return error_;
}

std::vector<MatrixResult> RankComputation::take_results() {
  VINDEX_ASSERT(finished() && !failed());
  std::vector<MatrixResult> out;
  out.reserve(results_.size());
  for (auto& r : results_) {
    if (!r) throw InternalError("a matrix of this rank has no result");
    out.push_back(std::move(*r));
  }
  results_.clear();
  return out;
}

}  // namespace vindex
