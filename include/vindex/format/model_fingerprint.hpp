// The model fingerprint: what journals and slices record so that a resume or a merge never mixes
// results of two different models, cheap enough to recompute from the model at every resume and
// merge.
//
// It is XXH64 over config.json, every shard's name, size and header (tensor names, dtypes, shapes,
// offsets, metadata), and samples of every tensor's bytes: kFingerprintSampleBytes at its start,
// middle and end (the whole tensor when it is smaller than three samples). Two checkpoints of one
// training run have identical headers but differ in every sample, so they are told apart.
//
// What it cannot see: a change confined to bytes between the samples of a tensor (an edit of a few
// weights in the middle of a matrix). Those are caught where it matters by the per-matrix weight
// digests (XXH64 of every byte a matrix's spectrum was computed from, kept in the journal, the
// slices and vindex.h5), which `--resume --verify-all` and `merge --verify-all` re-read and check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "vindex/format/checkpoint.hpp"

namespace vindex {

inline constexpr std::uint64_t kFingerprintSampleBytes = 1024;

struct ModelFingerprint {
  std::string value;           // 16 hex digits
  std::size_t tensors = 0;     // tensors sampled
  std::uint64_t bytes_read = 0;
  double seconds = 0;          // wall time of the sampling
};

// Computes the fingerprint with `threads` concurrent readers (the result does not depend on them).
ModelFingerprint fingerprint_model(const Checkpoint& checkpoint, int threads = 1);

}  // namespace vindex
