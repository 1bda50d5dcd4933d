// The result of one matrix, as computed on any rank, and its byte encoding for the gather to
// rank 0 (little-endian, fixed field order, versioned by kResultEncodingVersion).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vindex/plan.hpp"
#include "vindex/spectrum.hpp"
#include "vindex/stats.hpp"

namespace vindex {

struct MatrixResult {
  MatrixKey key;
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  FloatBits gram_bits = FloatBits::fp32;
  FloatBits eigen_bits = FloatBits::fp64;
  std::vector<float> singular_values;  // descending, min(rows, cols) values
  MatrixStats stats;
};

MatrixResult make_matrix_result(const WorkItem& item, const MatrixSpectrum& spectrum, std::span<const int> ks);

inline constexpr std::uint32_t kResultEncodingVersion = 3;

// Appends the encoding of `results` to `out`.
void encode_results(std::span<const MatrixResult> results, std::vector<std::byte>& out);
// Decodes a buffer of encode_results output; malformed bytes are an InternalError.
std::vector<MatrixResult> decode_results(std::span<const std::byte> bytes);

}  // namespace vindex
