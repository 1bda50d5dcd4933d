// The CUDA spectrum backend: a two-slot pipeline on one GPU plus host helper threads (see
// cuda_backend.hpp). Host code; the kernels are in decode_kernels.cu.
#include "cuda_backend.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "../cpu/blas_lapack.hpp"
#include "../cpu/gram_eigen_solver.hpp"
#include "../cpu/phase3_layer.hpp"
#include "cuda_resources.hpp"
#include "decode_kernels.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/model/dequantize.hpp"


namespace vindex::cuda {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMaxHelperN = 4096;  // largest Gram (n x n) handed to a host helper

StoredType stored_type(const TensorInfo& info) {
  switch (info.dtype) {
    case DType::F8_E4M3: return StoredType::f8_e4m3;
    case DType::BF16: return StoredType::bf16;
    case DType::F16: return StoredType::f16;
    case DType::F32: return StoredType::f32;
    default: throw InternalError(fmt::format("the CUDA backend has no decoder for {}", dtype_name(info.dtype)));
  }
}

template <typename T>
constexpr cudaDataType data_type() {
  return sizeof(T) == 8 ? CUDA_R_64F : CUDA_R_32F;
}

template <typename T>
void syrk_lower(cublasHandle_t h, bool transpose, int n, int k, const T* a, int lda, T* c) {
  const T one = 1, zero = 0;
  const cublasOperation_t op = transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (sizeof(T) == 8)
    check(cublasDsyrk(h, CUBLAS_FILL_MODE_LOWER, op, n, k, &one, a, lda, &zero, c, n), "cublasDsyrk");
  else
    check(cublasSsyrk(h, CUBLAS_FILL_MODE_LOWER, op, n, k, &one, a, lda, &zero, c, n), "cublasSsyrk");
}

// Ascending eigenvalues in float `T` -> descending float64, clamped at 0 (as the CPU backend).
template <typename T>
std::vector<double> descending_clamped(const T* ascending, std::size_t n) {
  std::vector<double> out(n);
  // std::max(x, 0.0) keeps a NaN (as the CPU backend does); std::max(0.0, x) would hide it.
  for (std::size_t i = 0; i < n; ++i) out[i] = std::max(static_cast<double>(ascending[n - 1 - i]), 0.0);
  return out;
}

template <typename T>
bool all_finite(const std::vector<T>& values) {
  return std::all_of(values.begin(), values.end(), [](T v) { return std::isfinite(v); });
}

// A host thread that solves Gram matrices handed to it by the GPU pipeline.
template <typename T>
struct Helper {
  PinnedBuffer<T> gram;  // the GPU copies the Gram matrix straight here
  std::vector<T> w;
  std::size_t index = 0;
  std::uint64_t n = 0;
  double frobenius_sq = 0;
  std::uint64_t digest = 0;
  bool sound = true;  // false: the float32 Gram over- or underflowed; solve the matrix in float64
  enum class State { idle, reserved, ready, stop } state = State::idle;
  std::thread thread;
};

template <typename T>
class Pipeline {
 public:
  Pipeline(const CudaBackendOptions& o, std::span<const EncodedMatrix> matrices, SpectrumSink& sink, StageTimes& times)
      : o_(o), matrices_(matrices), sink_(sink), times_(times), helpers_(static_cast<std::size_t>(o.host_helpers)) {}
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void run() {
    VINDEX_CUDA_CHECK(cudaSetDevice(o_.device));  // per thread: this is the computing thread
    slots_ = std::make_unique<std::array<Slot, 2>>();
    std::array<float, 256> table{};
    for (int c = 0; c < 256; ++c) table[static_cast<std::size_t>(c)] = fp8_e4m3_to_float(static_cast<std::uint8_t>(c));
    VINDEX_CUDA_CHECK(upload_fp8_table(table.data()));
    // The upload goes through the legacy stream, which the (non-blocking) slot streams do not wait for.
    VINDEX_CUDA_CHECK(cudaDeviceSynchronize());
    vindex::cpu::use_one_blas_thread();  // each helper's LAPACK call runs on its own thread
    try {
      for (auto& h : helpers_) h.thread = std::thread([this, &h] { helper_loop(h); });
      for (std::size_t i = 0; i < matrices_.size() && !sink_.should_stop(); ++i) {
        Slot& slot = (*slots_)[i % 2];
        if (slot.busy) finish(slot);
        naming(i, [&] { enqueue(slot, i); });
      }
      // The older slot first, so delivery follows submission.
      for (std::size_t k = 0; k < 2; ++k) {
        Slot& slot = (*slots_)[(matrices_.size() + k) % 2];
        if (slot.busy) finish(slot);
      }
    } catch (...) {
      // Copies may still run into slot or helper buffers: let them end before anything is freed.
      for (Slot& slot : *slots_) cudaStreamSynchronize(slot.stream.get());
      stop_helpers();
      throw;
    }
    stop_helpers();
  }

 private:
  struct Slot {
    PinnedBuffer<std::byte> staging;
    PinnedBuffer<float> scales_host;
    DeviceBuffer<std::byte> raw;
    DeviceBuffer<float> scales;
    DeviceBuffer<T> matrix, gram, eig;
    DeviceBuffer<double> partials, total;
    DeviceBuffer<int> info;
    DeviceBuffer<std::byte> work;
    std::vector<std::byte> host_work;
    PinnedBuffer<T> eig_host;
    PinnedBuffer<T> diag_host;  // fp32: the Gram's diagonal, for float32_gram_is_sound
    PinnedBuffer<double> total_host;
    PinnedBuffer<int> info_host;
    Stream stream;
    Event start, copied, decoded, grammed, solved;
    CublasHandle blas;
    CusolverHandle solver;
    std::optional<MatrixDecoder> decoder;
    std::vector<std::byte> host_bytes;  // stored bytes of a matrix decoded on the host
    std::uint64_t digest = 0;           // of the bytes read for this slot's matrix
    std::size_t index = 0;
    std::uint64_t n = 0;
    Helper<T>* helper = nullptr;  // non-null: the eigenvalues are solved on this host thread
    bool busy = false;
  };

  void enqueue(Slot& s, std::size_t i) {
    const EncodedMatrix& m = matrices_[i];
    if (m.min_dim() * m.min_dim() > (std::uint64_t{1} << 34))  // as the CPU backend
      throw InputError(m.weight.file(), m.weight.name(),
                       fmt::format("a {}x{} Gram matrix is too large", m.min_dim(), m.min_dim()));
    s.index = i;
    s.n = m.min_dim();
    const std::uint64_t rows = m.rows, cols = m.cols, elements = rows * cols;
    // A whole tensor travels as stored (fp8 is a quarter of float32's bytes) and is decoded on the
    // GPU; a slice of a fused tensor or MXFP4 is decoded here into float32 and sent as such.
    const bool whole = m.is_whole_tensor();
    const auto [span_begin, span_end] = m.weight_span();
    const std::size_t upload_bytes = whole ? span_end - span_begin : elements * sizeof(float);
    const StoredType type = whole ? stored_type(m.weight.info()) : StoredType::f32;

    // Read: the shard (page cache or disk) -> pinned staging with pread, digested on the way (the
    // decoder reads, checks the scales and takes the digest on the host, before any copy to the GPU).
    const auto t0 = Clock::now();
    s.staging.reserve(upload_bytes);
    if (whole) {
      s.decoder.emplace(m, s.staging.get());
    } else {
      s.decoder.emplace(m, s.host_bytes);
      s.decoder->decode(0, rows, 0, cols, reinterpret_cast<float*>(s.staging.get()), cols);
    }
    s.digest = s.decoder->digest();
    static const std::vector<float> kNoScales;
    const auto& scales = whole ? s.decoder->scales() : kNoScales;
    s.scales_host.reserve(scales.size());
    std::copy(scales.begin(), scales.end(), s.scales_host.get());
    times_.read_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

    const cudaStream_t st = s.stream.get();
    s.raw.reserve(upload_bytes);
    s.scales.reserve(std::max<std::size_t>(scales.size(), 1));
    s.matrix.reserve(elements);
    s.gram.reserve(s.n * s.n);
    s.partials.reserve(decode_blocks(elements));
    s.total.reserve(1);
    s.total_host.reserve(1);
    s.start.record(st);
    VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.raw.get(), s.staging.get(), upload_bytes, cudaMemcpyHostToDevice, st));
    if (!scales.empty())
      VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.scales.get(), s.scales_host.get(), scales.size() * sizeof(float),
                                        cudaMemcpyHostToDevice, st));
    s.copied.record(st);
    const std::uint64_t scale_cols = (cols + m.block_cols - 1) / m.block_cols;
    VINDEX_CUDA_CHECK(launch_decode<T>(s.raw.get(), type, scales.empty() ? nullptr : s.scales.get(),
                                       rows, cols, m.block_rows, m.block_cols, scale_cols,
                                       m.product_dtype == DType::BF16  ? StoredType::bf16
                                       : m.product_dtype == DType::F16 ? StoredType::f16
                                                                       : StoredType::f32,
                                       s.matrix.get(),
                                       s.partials.get(), st));
    VINDEX_CUDA_CHECK(launch_sum_partials(s.partials.get(), decode_blocks(elements), s.total.get(), st));
    // A NaN or Inf is reported from finish() (with the tensor and position); until then the
    // solvers get zeros rather than non-finite input, on which eigensolvers may not terminate.
    VINDEX_CUDA_CHECK(launch_zero_if_non_finite<T>(s.matrix.get(), elements, s.total.get(), st));
    VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.total_host.get(), s.total.get(), sizeof(double), cudaMemcpyDeviceToHost, st));
    s.decoded.record(st);
    // Row-major W is column-major W^T (cols x rows, leading dimension cols): the Gram matrix of
    // the smaller side is W^T W = X X^T when cols <= rows, else W W^T = X^T X.
    check(cublasSetStream(s.blas.get(), st), "cublasSetStream");
    syrk_lower<T>(s.blas.get(), cols > rows, static_cast<int>(s.n), static_cast<int>(std::max(rows, cols)),
                  s.matrix.get(), static_cast<int>(cols), s.gram.get());
    s.grammed.record(st);
    if constexpr (sizeof(T) == 4) {
      // The float32 Gram's diagonal (n values, stride n + 1) comes back before any solver touches
      // the Gram, so the host can tell whether it overflowed or underflowed (as the CPU backend
      // does). A float64 Gram of float32 values can do neither.
      s.diag_host.reserve(s.n);
      VINDEX_CUDA_CHECK(cudaMemcpy2DAsync(s.diag_host.get(), sizeof(T), s.gram.get(), (s.n + 1) * sizeof(T), sizeof(T),
                                          s.n, cudaMemcpyDeviceToHost, st));
    }

    // Host helpers take expert-sized problems; a large dense MLP's Gram (n = 7168: 411 MB in
    // float64) stays on the GPU rather than pinning that much per helper.
    s.helper = s.n <= kMaxHelperN ? reserve_helper() : nullptr;
    if (s.helper) {
      s.helper->gram.reserve(s.n * s.n);
      VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.helper->gram.get(), s.gram.get(), s.n * s.n * sizeof(T),
                                        cudaMemcpyDeviceToHost, st));
    } else {
      solve_on_gpu(s);
    }
    s.solved.record(st);
    s.busy = true;
  }

  void solve_on_gpu(Slot& s) {
    const cudaStream_t st = s.stream.get();
    const auto n = static_cast<std::int64_t>(s.n);
    s.eig.reserve(s.n);
    s.eig_host.reserve(s.n);
    s.info.reserve(1);
    s.info_host.reserve(1);
    check(cusolverDnSetStream(s.solver.get(), st), "cusolverDnSetStream");
    std::size_t device_bytes = 0, host_bytes = 0;
    check(cusolverDnXsyevd_bufferSize(s.solver.get(), s.solver.params(), CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER,
                                      n, data_type<T>(), s.gram.get(), n, data_type<T>(), s.eig.get(), data_type<T>(),
                                      &device_bytes, &host_bytes),
          "cusolverDnXsyevd_bufferSize");
    s.work.reserve(std::max<std::size_t>(device_bytes, 1));
    s.host_work.resize(std::max<std::size_t>(host_bytes, 1));
    check(cusolverDnXsyevd(s.solver.get(), s.solver.params(), CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER, n,
                           data_type<T>(), s.gram.get(), n, data_type<T>(), s.eig.get(), data_type<T>(), s.work.get(),
                           device_bytes, s.host_work.data(), host_bytes, s.info.get()),
          "cusolverDnXsyevd");
    VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.eig_host.get(), s.eig.get(), s.n * sizeof(T), cudaMemcpyDeviceToHost, st));
    VINDEX_CUDA_CHECK(cudaMemcpyAsync(s.info_host.get(), s.info.get(), sizeof(int), cudaMemcpyDeviceToHost, st));
  }

  void finish(Slot& s) {
    naming(s.index, [&] { s.stream.synchronize(); });
    s.busy = false;
    times_.h2d_ms += s.copied.since(s.start);
    times_.dequant_ms += s.decoded.since(s.copied);
    times_.gram_ms += s.grammed.since(s.decoded);
    const double frobenius_sq = *s.total_host.get();
    bool sound = true;
    if constexpr (sizeof(T) == 4) {
      double trace = 0;
      for (std::uint64_t i = 0; i < s.n; ++i) trace += s.diag_host.get()[i];
      sound = float32_gram_is_sound(trace, frobenius_sq, s.n, matrices_[s.index].max_dim());
    }
    if (s.helper) {
      Helper<T>& h = *s.helper;
      s.helper = nullptr;
      {
        const std::lock_guard lock(mutex_);
        h.index = s.index;
        h.n = s.n;
        h.frobenius_sq = frobenius_sq;
        h.digest = s.digest;
        h.sound = sound;
        h.state = Helper<T>::State::ready;
      }
      cv_.notify_all();
      return;
    }
    times_.eigen_gpu_ms += s.solved.since(s.grammed);
    ++times_.on_gpu;
    try {
      if (!std::isfinite(frobenius_sq)) s.decoder->fail_non_finite();
      if (!sound) {
        sink_.deliver(s.index, float64_on_host(s.index));
        return;
      }
      if (*s.info_host.get() != 0)
        throw named(LibraryError("cuSOLVER", "cusolverDnXsyevd", fmt::format("info = {}", *s.info_host.get())), s.index);
      MatrixSpectrum spectrum{descending_clamped(s.eig_host.get(), s.n), frobenius_sq, bits(), bits(), s.digest};
      if (!all_finite(spectrum.eigenvalues)) spectrum = float64_on_host(s.index);
      sink_.deliver(s.index, std::move(spectrum));
    } catch (...) {
      sink_.fail(s.index, std::current_exception());
    }
  }

  static FloatBits bits() { return sizeof(T) == 8 ? FloatBits::fp64 : FloatBits::fp32; }

  // A library failure while computing matrix i, named with its file and tensor.
  LibraryError named(const LibraryError& e, std::size_t i) const {
    return LibraryError(e, matrices_[i].weight.file(), matrices_[i].weight.name());
  }
  template <typename F>
  void naming(std::size_t i, F&& step) const {
    try {
      step();
    } catch (const LibraryError& e) {
      throw named(e, i);
    }
  }

  // The fp32 pipeline's fallback for a float32 Gram that overflowed or underflowed (or gave a
  // non-finite eigenvalue): the matrix decoded again on this host thread and solved by the CPU
  // backend's float64 path, recorded as gram_bits and eigen_bits 64 -- what the CPU backend does
  // under every precision (README, "Accuracy"). Rare (extreme block scales), so the pipeline may
  // stall for it. Its LAPACK failures already name the tensor.
  MatrixSpectrum float64_on_host(std::size_t i) const {
    cpu::GramEigenSolver solver;
    return solver.solve(matrices_[i], PrecisionPolicy::fp64, {});
  }

  Helper<T>* reserve_helper() {
    const std::lock_guard lock(mutex_);
    for (auto& h : helpers_)
      if (h.state == Helper<T>::State::idle) {
        h.state = Helper<T>::State::reserved;
        return &h;
      }
    return nullptr;
  }

  void helper_loop(Helper<T>& h) {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return h.state == Helper<T>::State::ready || h.state == Helper<T>::State::stop; });
        if (h.state == Helper<T>::State::stop) return;
      }
      const auto t0 = Clock::now();
      try {
        if (!std::isfinite(h.frobenius_sq)) MatrixDecoder(matrices_[h.index]).fail_non_finite();
        if (!h.sound) {
          sink_.deliver(h.index, float64_on_host(h.index));
        } else {
          h.w.resize(h.n);
          naming(h.index, [&] {
            vindex::cpu::eigenvalues_lower(static_cast<int>(h.n), h.gram.get(), static_cast<int>(h.n), h.w.data());
          });
          MatrixSpectrum spectrum{descending_clamped(h.w.data(), h.n), h.frobenius_sq, bits(), bits(), h.digest};
          if (!all_finite(spectrum.eigenvalues)) spectrum = float64_on_host(h.index);
          sink_.deliver(h.index, std::move(spectrum));
        }
      } catch (...) {
        sink_.fail(h.index, std::current_exception());
      }
      {
        const std::lock_guard lock(mutex_);
        times_.eigen_host_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        ++times_.on_host;
        if (h.state != Helper<T>::State::stop) h.state = Helper<T>::State::idle;
      }
      cv_.notify_all();  // stop_helpers waits for no helper to be busy
    }
  }

  // Lets the helpers finish the solves they hold, then ends them.
  void stop_helpers() {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] {
        return std::none_of(helpers_.begin(), helpers_.end(),
                            [](const Helper<T>& h) { return h.state == Helper<T>::State::ready; });
      });
      for (auto& h : helpers_) h.state = Helper<T>::State::stop;
    }
    cv_.notify_all();
    for (auto& h : helpers_)
      if (h.thread.joinable()) h.thread.join();
  }

  const CudaBackendOptions& o_;
  std::span<const EncodedMatrix> matrices_;
  SpectrumSink& sink_;
  StageTimes& times_;
  std::vector<Helper<T>> helpers_;
  std::unique_ptr<std::array<Slot, 2>> slots_;  // made once the device is current; destroyed first
  std::mutex mutex_;
  std::condition_variable cv_;
};

class CudaBackend final : public SpectrumBackend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o) : o_(o) {
    VINDEX_CUDA_CHECK(cudaSetDevice(o_.device));
    cudaDeviceProp prop{};
    VINDEX_CUDA_CHECK(cudaGetDeviceProperties(&prop, o_.device));
    device_name_ = prop.name;
  }
  std::string name() const override { return "cuda"; }
  std::string description() const override {
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    return fmt::format("cuda: device {} ({}), {} host helper thread(s), precision {} ({} Gram and eigenvalues), "
                       "cuBLAS syrk + cuSOLVER Xsyevd / LAPACK syevd_2stage, CUDA runtime {}, driver {}",
                       o_.device, device_name_, o_.host_helpers, precision_policy_name(o_.precision),
                       o_.precision == PrecisionPolicy::fp32 ? "float32" : "float64", runtime, driver);
  }
  void compute(std::span<const EncodedMatrix> matrices, SpectrumSink& sink) override {
    if (o_.precision == PrecisionPolicy::fp32) {
      Pipeline<float>(o_, matrices, sink, times_).run();
    } else {
      Pipeline<double>(o_, matrices, sink, times_).run();
    }
  }
  // On the host, as the CPU backend does: phase 3 takes minutes where the spectra take hours.
  LayerPhase3 phase3_layer(const Phase3Inputs& inputs, int layer) override {
    return cpu::compute_layer_phase3(inputs, layer);
  }
  const StageTimes& times() const { return times_; }

 private:
  CudaBackendOptions o_;
  std::string device_name_;
  StageTimes times_;
};

}  // namespace

std::unique_ptr<SpectrumBackend> make_cuda_backend(const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

StageTimes stage_times(const SpectrumBackend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  return cuda ? cuda->times() : StageTimes{};
}

int visible_devices(std::string& why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    why = fmt::format("cudaGetDeviceCount: {}", cudaGetErrorString(status));
    return -1;
  }
  return count;
}

}  // namespace vindex::cuda
