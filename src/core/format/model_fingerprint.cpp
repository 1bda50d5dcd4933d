// The model fingerprint (see vindex/format/model_fingerprint.hpp).
#include "vindex/format/model_fingerprint.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "vindex/base/checksum.hpp"
#include "vindex/base/parallel_for.hpp"

namespace vindex {
namespace {

// XXH64 of a tensor's samples: [0, S), [(size - S) / 2, +S), [size - S, size), or the whole tensor.
std::uint64_t sample_tensor(const TensorView& view, std::vector<std::byte>& buffer, std::uint64_t& bytes_read) {
  const std::uint64_t size = view.info().byte_size();
  constexpr std::uint64_t S = kFingerprintSampleBytes;
  Xxh64 h;
  h.update(size);
  const auto take = [&](std::uint64_t begin, std::uint64_t end) {
    buffer.resize(end - begin);
    view.read(begin, end, buffer.data());
    h.update(buffer);
    bytes_read += end - begin;
  };
  if (size <= 3 * S) {
    if (size > 0) take(0, size);
  } else {
    take(0, S);
    take((size - S) / 2, (size - S) / 2 + S);
    take(size - S, size);
  }
  return h.value();
}

}  // namespace

ModelFingerprint fingerprint_model(const Checkpoint& ckpt, int threads) {
  const auto started = std::chrono::steady_clock::now();
  Xxh64 h;
  h.update(std::string_view("vindex model fingerprint v2"));
  h.update(ckpt.config().dump());
  h.update(static_cast<std::uint64_t>(ckpt.shards().size()));
  for (const Shard& shard : ckpt.shards()) {
    h.update(shard.file_name);
    h.update(shard.file_size);
    h.update(shard.header.header_size);
    for (const auto& [key, value] : shard.header.metadata) {
      h.update(key);
      h.update(value);
    }
    for (const TensorInfo& t : shard.header.tensors) {
      h.update(t.name);
      h.update(dtype_name(t.dtype));
      if (t.ggml_type) h.update(static_cast<std::uint64_t>(*t.ggml_type));  // GGUF block types
      h.update(static_cast<std::uint64_t>(t.shape.size()));
      for (std::uint64_t d : t.shape) h.update(d);
      h.update(t.begin);
      h.update(t.end);
    }
  }

  // The samples, in index order whatever the number of threads.
  const auto names = ckpt.tensor_names();
  std::vector<std::uint64_t> samples(names.size());
  const auto workers = static_cast<std::size_t>(std::max(threads, 1));
  std::vector<std::vector<std::byte>> buffers(workers);
  std::vector<std::uint64_t> bytes(workers, 0);
  parallel_for(names.size(), threads, [&](std::size_t i, std::size_t worker) {
    samples[i] = sample_tensor(ckpt.view(*ckpt.find(names[i])), buffers[worker], bytes[worker]);
  });
  for (std::size_t i = 0; i < names.size(); ++i) {
    h.update(names[i]);
    h.update(samples[i]);
  }
  ModelFingerprint f;
  f.value = fmt::format("{:016x}", h.value());
  f.tensors = names.size();
  f.bytes_read = std::accumulate(bytes.begin(), bytes.end(), std::uint64_t{0});
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return f;
}

}  // namespace vindex
