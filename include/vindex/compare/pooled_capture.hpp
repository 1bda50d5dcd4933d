// A vindex-pooled-capture file (docs/cross_cka.md): per prompt and per hidden state of one model, the
// mean over the prompt's tokens and the last token's vector, with a SHA-256 of every prompt's text.
// Written by tools/capture/capture.py --pooled; read by `vindex_mpi cka`. Opening checks the whole
// structure; reads check the values. Every problem is an InputError naming the file and the object.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace vindex {

enum class Pooling { mean, last };
inline constexpr std::array<Pooling, 2> kPoolings{Pooling::mean, Pooling::last};
const char* pooling_name(Pooling pooling);

using PromptDigest = std::array<std::uint8_t, 32>;

// The most prompts a pooled capture may hold (its prompt Grams are P x P).
inline constexpr std::uint64_t kMaxPooledPrompts = 8192;

struct PooledCaptureInfo {
  std::string path;
  std::string model;
  std::string model_type;
  std::string engine;
  std::uint64_t n_prompts = 0;
  std::uint64_t n_representations = 0;  // num_hidden_layers + 1: the embedding output, then each layer's
  std::uint64_t hidden_size = 0;
};

class PooledCapture {
 public:
  // Opens and checks `path`: format and version, the attributes, /prompts/sha256 [P, 32] bytes,
  // /prompts/n_tokens [P] (>= 1), /pooled/mean and /pooled/last [R, P, H] floating point of at most
  // 8 bytes, plain datasets of this file only.
  static PooledCapture open(const std::filesystem::path& path);
  PooledCapture(PooledCapture&&) noexcept;
  PooledCapture& operator=(PooledCapture&&) noexcept;
  ~PooledCapture();

  const PooledCaptureInfo& info() const { return info_; }
  const std::vector<PromptDigest>& prompt_digests() const { return digests_; }
  // Representation r of every prompt ([P, H] row-major, float64); NaN or Inf is an InputError.
  std::vector<double> representation(Pooling pooling, std::uint64_t r) const;

 private:
  struct Impl;
  explicit PooledCapture(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  PooledCaptureInfo info_;
  std::vector<PromptDigest> digests_;
};

// Refuses (InputError naming both files and the first prompt that differs) two captures that do not
// hold the same prompts in the same order.
void require_same_prompts(const PooledCapture& a, const PooledCapture& b);

// The SHA-256 of the concatenated prompt digests: one name for the prompt set (hex).
std::string prompt_set_sha256(const std::vector<PromptDigest>& digests);

}  // namespace vindex
