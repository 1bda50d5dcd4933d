// The result of one matrix, as computed on any rank, and its byte encoding for the gather to
// rank 0 (little-endian, fixed field order, versioned by kResultEncodingVersion).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vindex/numerics/stats.hpp"
#include "vindex/run/backend.hpp"
#include "vindex/run/plan.hpp"

namespace vindex {

struct MatrixResult {
  MatrixKey key;
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  FloatBits gram_bits = FloatBits::fp32;
  FloatBits eigen_bits = FloatBits::fp64;
  std::uint64_t weight_digest = 0;     // XXH64 of the stored bytes read (MatrixDecoder::digest)
  std::vector<float> singular_values;  // descending, min(rows, cols) values
  MatrixStats stats;
};

MatrixResult make_matrix_result(const WorkItem& item, const MatrixSpectrum& spectrum, std::span<const int> ks);

// What is wrong with a result read back (from a journal or a slice) for the planned `item`, or ""
// when it could have been computed by this build: its shape against the plan, min(rows, cols)
// singular values, finite, non-negative and descending, sigma_0 equal to top_sv and at most
// ||W||_F, one var@k per k, each in [0, 1] (up to rounding, 1e-3; NaN only for a zero matrix).
std::string result_problem(const MatrixResult& result, const WorkItem& item, std::size_t k_count);

inline constexpr std::uint32_t kResultEncodingVersion = 4;

// Appends the encoding of `results` to `out`.
void encode_results(std::span<const MatrixResult> results, std::vector<std::byte>& out);
// Decodes a buffer of encode_results output; malformed bytes are an InternalError.
std::vector<MatrixResult> decode_results(std::span<const std::byte> bytes);

}  // namespace vindex
