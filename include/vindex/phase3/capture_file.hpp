// A vindex-capture file (docs/phase3.md): the hidden states an inference engine captured on a
// prompt set -- per layer the MLP input of every token, optionally the engine's own routing --
// and the top next-token probabilities. Opening checks the whole structure against the model's
// layout; reads check the values. Every problem is an InputError naming the file and the object.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "vindex/model/layout.hpp"

namespace vindex {

struct CaptureInfo {
  std::string path;
  std::string model;
  std::string engine;
  std::uint64_t n_tokens = 0;
  std::uint64_t n_prompts = 0;
};

class CaptureFile {
 public:
  // Opens `path` and checks it against `layout`: format and version, one mlp_input [N, H] per
  // layer of the model, token datasets of N (prompt_index non-decreasing), routing datasets of MoE
  // layers [N, E] and [N, k] with config.json's k, and top_probs [N, P >= 8] (top_token_ids
  // [N, P] when present); every dataset's HDF5 class: integers (at most 8 bytes) for ids,
  // indices and positions, floating point (at most 8 bytes) for the rest.
  static CaptureFile open(const std::filesystem::path& path, const ModelLayout& layout);
  CaptureFile(CaptureFile&&) noexcept;
  CaptureFile& operator=(CaptureFile&&) noexcept;
  ~CaptureFile();

  const CaptureInfo& info() const { return info_; }
  // Rows [r0, r1) of a layer's mlp_input, row-major float32 (float64 rounded once); NaN or Inf,
  // or a float64 value past float32's range, is an InputError.
  std::vector<float> mlp_input(int layer, std::uint64_t r0, std::uint64_t r1) const;
  // Rows [r0, r1) of the engine's chosen experts of a layer ([r1 - r0, k] row-major), empty when
  // the capture has none; an expert outside the layer's, or one listed twice for a token, is an
  // InputError.
  std::vector<std::int32_t> selected_experts(int layer, std::uint64_t r0, std::uint64_t r1) const;
  // The first 8 columns of top_probs ([N, 8] row-major); a value outside [0, 1] is an InputError.
  std::vector<float> top8_probs() const;

 private:
  struct Impl;
  explicit CaptureFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  CaptureInfo info_;
};

}  // namespace vindex
