// Per-matrix results and their encoding for transfer between ranks.
#include "vindex/run/results.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "../base/byte_codec.hpp"
#include "vindex/base/errors.hpp"

namespace vindex {

MatrixResult make_matrix_result(const WorkItem& item, const MatrixSpectrum& spectrum, std::span<const int> ks) {
  MatrixResult r;
  r.key = item.key;
  r.rows = item.weight.rows;
  r.cols = item.weight.cols;
  r.gram_bits = spectrum.gram_bits;
  r.eigen_bits = spectrum.eigen_bits;
  r.weight_digest = spectrum.weight_digest;
  r.singular_values.resize(spectrum.eigenvalues.size());
  for (std::size_t i = 0; i < spectrum.eigenvalues.size(); ++i)
    r.singular_values[i] = static_cast<float>(std::sqrt(spectrum.eigenvalues[i]));
  r.stats = compute_matrix_stats(spectrum.eigenvalues, spectrum.frobenius_sq, ks);
  add_weightwatcher_metrics(spectrum.eigenvalues, r.rows, r.cols, r.stats);
  return r;
}

std::string result_problem(const MatrixResult& r, const WorkItem& item, std::size_t k_count) {
  if (r.rows != item.weight.rows || r.cols != item.weight.cols)
    return fmt::format("shape {}x{}, but the model's matrix is {}x{}", r.rows, r.cols, item.weight.rows, item.weight.cols);
  const std::uint64_t n = std::min(r.rows, r.cols);
  if (r.singular_values.size() != n) return fmt::format("{} singular values, not {}", r.singular_values.size(), n);
  for (std::size_t i = 0; i < r.singular_values.size(); ++i) {
    const float s = r.singular_values[i];
    if (!std::isfinite(s) || s < 0) return fmt::format("singular value {} is {}", i, s);
    if (i > 0 && s > r.singular_values[i - 1]) return fmt::format("singular values ascend at {}", i);
  }
  const double norm = r.stats.frobenius_norm;
  if (!std::isfinite(norm) || norm < 0) return fmt::format("Frobenius norm {}", norm);
  if (n > 0 && (static_cast<float>(r.stats.top_sv) != r.singular_values[0] || r.stats.top_sv > norm * (1 + 1e-3)))
    return fmt::format("top singular value {} disagrees with the singular values ({}) or the norm ({})", r.stats.top_sv,
                       r.singular_values[0], norm);
  if (r.stats.var_at_k.size() != k_count) return fmt::format("{} var@k values for {} k", r.stats.var_at_k.size(), k_count);
  for (double v : r.stats.var_at_k)
    if (std::isnan(v) ? norm != 0 : !(v >= 0 && v <= 1 + 1e-3)) return fmt::format("var@k {} is outside [0, 1]", v);
  return "";
}

void encode_results(std::span<const MatrixResult> results, std::vector<std::byte>& out) {
  ByteWriter w(out);
  w.put<std::uint32_t>(kResultEncodingVersion);
  w.put<std::uint64_t>(results.size());
  for (const MatrixResult& r : results) {
    w.put<std::int32_t>(r.key.layer);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(r.key.role));
    w.put<std::uint8_t>(static_cast<std::uint8_t>(r.key.projection));
    w.put<std::int32_t>(r.key.expert);
    w.put<std::uint64_t>(r.rows);
    w.put<std::uint64_t>(r.cols);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(r.gram_bits));
    w.put<std::uint8_t>(static_cast<std::uint8_t>(r.eigen_bits));
    w.put<std::uint64_t>(r.weight_digest);
    w.put_array<float>(r.singular_values);
    w.put_array<double>(r.stats.var_at_k);
    for (const ScalarStat& s : kScalarStats) w.put<double>(r.stats.*s.member);
  }
}

std::vector<MatrixResult> decode_results(std::span<const std::byte> bytes) {
  ByteReader rd(bytes);
  if (rd.get<std::uint32_t>() != kResultEncodingVersion) throw InternalError("result buffer of another encoding version");
  const auto count = rd.get<std::uint64_t>();
  std::vector<MatrixResult> results;
  constexpr std::uint64_t kMinEncodedResult = 52 + 8 * kScalarStats.size();  // the fixed-size fields of one result
  results.reserve(std::min<std::uint64_t>(count, bytes.size() / kMinEncodedResult));
  for (std::uint64_t i = 0; i < count; ++i) {
    MatrixResult r;
    r.key.layer = rd.get<std::int32_t>();
    const auto role = rd.get<std::uint8_t>();
    const auto projection = rd.get<std::uint8_t>();
    if (role > static_cast<std::uint8_t>(MatrixRole::router) || projection > static_cast<std::uint8_t>(Projection::down))
      throw InternalError("result buffer with an unknown matrix role or projection");
    r.key.role = static_cast<MatrixRole>(role);
    r.key.projection = static_cast<Projection>(projection);
    r.key.expert = rd.get<std::int32_t>();
    r.rows = rd.get<std::uint64_t>();
    r.cols = rd.get<std::uint64_t>();
    const auto gram_bits = rd.get<std::uint8_t>();
    const auto eigen_bits = rd.get<std::uint8_t>();
    for (auto bits : {gram_bits, eigen_bits})
      if (bits != 32 && bits != 64) throw InternalError("result buffer with a precision other than 32 or 64 bits");
    r.gram_bits = static_cast<FloatBits>(gram_bits);
    r.eigen_bits = static_cast<FloatBits>(eigen_bits);
    r.weight_digest = rd.get<std::uint64_t>();
    r.singular_values = rd.get_array<float>();
    r.stats.var_at_k = rd.get_array<double>();
    for (const ScalarStat& s : kScalarStats) r.stats.*s.member = rd.get<double>();
    results.push_back(std::move(r));
  }
  if (!rd.done()) throw InternalError("trailing bytes in result buffer");
  return results;
}

}  // namespace vindex
