// The CPU backend's spectra against a float64 LAPACK SVD (dgesdd) of the same matrix, on flat
// (Kimi-K2-like) and steep (fp16-trained-like) spectra, tall and wide, at the bars of the README:
// every singular value within 1e-4 x sigma_max and var@k within 1e-6.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "catch_compat.hpp"
#include "cpu/gram_eigen_solver.hpp"
#include "test_support.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/numerics/stats.hpp"

using namespace vindex;

namespace {

struct Outcome {
  MatrixSpectrum spectrum;
  std::vector<double> reference;  // float64 singular values of the stored (float32) matrix
  double sv_error = 0;            // max |sigma_i - ref_i| / ref_0
  double var_error = 0;           // max over k of |var@k - ref|
};

std::vector<double> power_law(std::size_t n, double p) {
  std::vector<double> s(n);
  for (std::size_t j = 0; j < n; ++j) s[j] = std::pow(static_cast<double>(j + 1), -p);
  return s;
}

std::vector<double> flat(std::size_t n) {
  std::vector<double> s(n);
  for (std::size_t j = 0; j < n; ++j) s[j] = 1.2 - 0.4 * static_cast<double>(j) / static_cast<double>(n);
  return s;
}

// A Gaussian matrix: the Marchenko-Pastur spectrum that Kimi-K2's experts resemble.
std::vector<double> gaussian(std::uint64_t rows, std::uint64_t cols) {
  std::mt19937_64 rng(rows + cols);
  std::normal_distribution<double> normal;
  std::vector<double> w(rows * cols);
  for (double& x : w) x = normal(rng);
  return w;
}

const std::vector<int> kKs{1, 16, 64, 256};

Outcome solve_matrix(const std::vector<double>& w64, std::uint64_t rows, std::uint64_t cols, PrecisionPolicy policy,
                     const std::vector<int>& policy_ks = kKs) {
  std::vector<float> w32(w64.size());
  std::vector<double> stored(w64.size());
  for (std::size_t i = 0; i < w64.size(); ++i) {
    w32[i] = static_cast<float>(w64[i] * 0.023);
    stored[i] = w32[i];
  }
  vindex_test::TempDir tmp;
  vindex_test::SafetensorsBuilder b;
  b.add_f32("w", {rows, cols}, w32);
  const auto path = tmp.path() / "m.safetensors";
  b.write(path);
  const SafetensorsHeader header = read_safetensors_header(path, path.string());
  EncodedMatrix m;
  m.weight = TensorView(std::make_shared<const ShardFile>(path), header.find("w"), header.data_offset());
  m.rows = rows;
  m.cols = cols;

  Outcome out;
  cpu::GramEigenSolver solver;
  out.spectrum = solver.solve(m, policy, policy_ks);
  out.reference = vindex_test::float64_singular_values(stored, rows, cols);
  REQUIRE(out.spectrum.eigenvalues.size() == out.reference.size());
  for (std::size_t i = 0; i < out.reference.size(); ++i)
    out.sv_error = std::max(out.sv_error, std::abs(std::sqrt(out.spectrum.eigenvalues[i]) - out.reference[i]));
  out.sv_error /= out.reference[0];
  const std::vector<int>& ks = kKs;
  double ref_fro = 0;
  std::vector<double> ref_eig;
  for (double x : out.reference) ref_eig.push_back(x * x), ref_fro += x * x;
  const MatrixStats ours = compute_matrix_stats(out.spectrum.eigenvalues, out.spectrum.frobenius_sq, ks);
  const MatrixStats ref = compute_matrix_stats(ref_eig, ref_fro, ks);
  for (std::size_t i = 0; i < ks.size(); ++i)
    out.var_error = std::max(out.var_error, std::abs(ours.var_at_k[i] - ref.var_at_k[i]));
  return out;
}

Outcome solve(std::uint64_t rows, std::uint64_t cols, const std::vector<double>& s, PrecisionPolicy policy) {
  return solve_matrix(vindex_test::matrix_with_singular_values(rows, cols, s, rows * 31 + cols), rows, cols, policy);
}

void require_within_bars(const Outcome& o) {
  CAPTURE(o.sv_error, o.var_error, static_cast<int>(o.spectrum.gram_bits), static_cast<int>(o.spectrum.eigen_bits));
  REQUIRE(o.sv_error <= 1e-4);
  REQUIRE(o.var_error <= 1e-6);
}

}  // namespace

TEST_CASE("flat spectra keep the float32 Gram matrix and meet the bars", "[accuracy]") {
  for (const Outcome& o : {solve(2048, 512, flat(512), PrecisionPolicy::automatic),
                           solve(384, 1500, flat(384), PrecisionPolicy::automatic),
                           solve_matrix(gaussian(2048, 512), 2048, 512, PrecisionPolicy::automatic)}) {
    REQUIRE(o.spectrum.gram_bits == FloatBits::fp32);
    REQUIRE(o.spectrum.eigen_bits == FloatBits::fp64);
    require_within_bars(o);
  }
}

TEST_CASE("steep spectra switch to a float64 Gram matrix and meet the bars", "[accuracy]") {
  for (double p : {1.0, 2.0}) {
    CAPTURE(p);
    const Outcome tall = solve(1536, 512, power_law(512, p), PrecisionPolicy::automatic);
    REQUIRE(tall.spectrum.gram_bits == FloatBits::fp64);
    require_within_bars(tall);
    const Outcome wide = solve(300, 1100, power_law(300, p), PrecisionPolicy::automatic);
    require_within_bars(wide);
  }
}

TEST_CASE("wide matrices streamed in several column chunks meet the bars", "[accuracy]") {
  // 20000 columns: 3 chunks of the long side in float32, 6 in float64.
  const Outcome flat_wide = solve(300, 20000, flat(300), PrecisionPolicy::automatic);
  REQUIRE(flat_wide.spectrum.gram_bits == FloatBits::fp32);
  require_within_bars(flat_wide);
  const Outcome steep_wide = solve(300, 20000, power_law(300, 1.0), PrecisionPolicy::automatic);
  REQUIRE(steep_wide.spectrum.gram_bits == FloatBits::fp64);
  require_within_bars(steep_wide);
}

TEST_CASE("the precision chosen for var@64 does not depend on other requested k", "[accuracy]") {
  // One dominant direction over a flat floor: var@64 needs float64, and asking for a k beyond the
  // matrix's rank as well must not relax that.
  std::vector<double> s(512, 0.05);
  s[0] = 1.0;
  const std::vector<double> w = vindex_test::matrix_with_singular_values(2048, 512, s, 99);
  const Outcome alone = solve_matrix(w, 2048, 512, PrecisionPolicy::automatic, {64});
  const Outcome with_large_k = solve_matrix(w, 2048, 512, PrecisionPolicy::automatic, {64, 600});
  REQUIRE(alone.spectrum.gram_bits == FloatBits::fp64);
  REQUIRE(with_large_k.spectrum.gram_bits == FloatBits::fp64);
  REQUIRE(alone.spectrum.eigenvalues == with_large_k.spectrum.eigenvalues);
  require_within_bars(with_large_k);
}

TEST_CASE("forced precisions meet the bars where they are expected to", "[accuracy]") {
  require_within_bars(solve(1536, 512, power_law(512, 2.0), PrecisionPolicy::fp64));
  require_within_bars(solve(1536, 512, power_law(512, 0.5), PrecisionPolicy::fp32));
}

TEST_CASE("Kimi-K2-shaped experts (7168 x 2048) meet the bars, flat and steep", "[accuracy][kimi]") {
  const Outcome kimi_flat = solve_matrix(gaussian(7168, 2048), 7168, 2048, PrecisionPolicy::automatic);
  REQUIRE(kimi_flat.spectrum.gram_bits == FloatBits::fp32);  // the fast path on Kimi-K2's spectra
  require_within_bars(kimi_flat);
  const Outcome steep = solve(7168, 2048, power_law(2048, 1.0), PrecisionPolicy::automatic);  // var@64 ~ 0.99
  require_within_bars(steep);
}

// --- Numerically hostile but finite fp8 block scales (issue "Trust, round two", item 6) --------
// A 1e20 block scale makes the float32 Gram overflow (448 x 1e20 squared is past float32's range);
// a 1e-30 one makes the float32 products flush to zero while the float64 norm is positive. Every
// precision must still meet the bars against float64 LAPACK dgesdd of the same dequantized matrix,
// which is decoded here independently of the decoder: torch's e4m3fn table
// (fixtures/reference/fp8_e4m3fn.txt) times the block scale, one float32 multiply.

namespace {

std::vector<float> torch_fp8_table() {
  std::ifstream in(vindex_test::fixture("reference/fp8_e4m3fn.txt"));
  std::vector<float> table(256, NAN);
  int code = 0;
  std::string hex;
  while (in >> code >> hex)
    table[static_cast<std::size_t>(code)] = std::bit_cast<float>(static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16)));
  return table;
}

struct Fp8Outcome {
  MatrixSpectrum spectrum;
  double sv_error = 0;
  double var_error = 0;
};

// A rows x cols F8_E4M3 matrix (a flat spectrum rounded to the nearest e4m3fn codes, |x| <= 300)
// with 128 x 128 block scales `scales` ([ceil(rows/128), ceil(cols/128)] row-major).
Fp8Outcome solve_fp8(std::uint64_t rows, std::uint64_t cols, const std::vector<float>& scales, PrecisionPolicy policy) {
  static const std::vector<float> table = torch_fp8_table();
  const std::vector<double> w = vindex_test::matrix_with_singular_values(rows, cols, flat(std::min(rows, cols)), 7);
  double max_abs = 0;
  for (double x : w) max_abs = std::max(max_abs, std::abs(x));
  std::vector<std::byte> codes(w.size());
  std::vector<double> stored(w.size());
  const std::uint64_t scale_cols = (cols + 127) / 128;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double x = w[i] / max_abs * 300.0;
    int best = 0;
    for (int c = 0; c < 256; ++c)
      if (std::isfinite(table[static_cast<std::size_t>(c)]) &&
          std::abs(table[static_cast<std::size_t>(c)] - x) < std::abs(table[static_cast<std::size_t>(best)] - x))
        best = c;
    codes[i] = static_cast<std::byte>(best);
    const std::uint64_t r = i / cols, c = i % cols;
    stored[i] = static_cast<double>(table[static_cast<std::size_t>(best)] * scales[(r / 128) * scale_cols + c / 128]);
  }
  vindex_test::TempDir tmp;
  vindex_test::SafetensorsBuilder b;
  b.add("w", "F8_E4M3", {rows, cols}, codes).add_f32("w_scale_inv", {(rows + 127) / 128, scale_cols}, scales);
  const auto path = tmp.path() / "m.safetensors";
  b.write(path);
  const SafetensorsHeader header = read_safetensors_header(path, path.string());
  const auto mapping = std::make_shared<const ShardFile>(path);
  EncodedMatrix m;
  m.weight = TensorView(mapping, header.find("w"), header.data_offset());
  m.scale = TensorView(mapping, header.find("w_scale_inv"), header.data_offset() + header.find("w_scale_inv")->begin);
  m.encoding = WeightEncoding::fp8_block;
  m.rows = rows;
  m.cols = cols;

  Fp8Outcome out;
  cpu::GramEigenSolver solver;
  const std::vector<int> ks{1, 16, 64};
  out.spectrum = solver.solve(m, policy, ks);
  const std::vector<double> reference = vindex_test::float64_singular_values(stored, rows, cols);
  REQUIRE(out.spectrum.eigenvalues.size() == reference.size());
  for (std::size_t i = 0; i < reference.size(); ++i)
    out.sv_error = std::max(out.sv_error, std::abs(std::sqrt(out.spectrum.eigenvalues[i]) - reference[i]));
  out.sv_error /= reference[0];
  std::vector<double> ref_eig;
  double ref_fro = 0;
  for (double x : reference) ref_eig.push_back(x * x), ref_fro += x * x;
  const MatrixStats ours = compute_matrix_stats(out.spectrum.eigenvalues, out.spectrum.frobenius_sq, ks);
  const MatrixStats ref = compute_matrix_stats(ref_eig, ref_fro, ks);
  for (std::size_t i = 0; i < ks.size(); ++i)
    out.var_error = std::max(out.var_error, std::abs(ours.var_at_k[i] - ref.var_at_k[i]));
  return out;
}

constexpr PrecisionPolicy kAllPolicies[] = {PrecisionPolicy::automatic, PrecisionPolicy::fp32, PrecisionPolicy::fp64};

void require_fp8_within_bars(const Fp8Outcome& o) {
  CAPTURE(o.sv_error, o.var_error, static_cast<int>(o.spectrum.gram_bits), static_cast<int>(o.spectrum.eigen_bits));
  REQUIRE(o.sv_error <= 1e-4);
  REQUIRE(o.var_error <= 1e-6);
}

}  // namespace

TEST_CASE("fp8 block scales of 1e20 overflow the float32 Gram: every precision falls back to float64", "[accuracy][hostile]") {
  for (const PrecisionPolicy policy : kAllPolicies) {
    CAPTURE(precision_policy_name(policy));
    for (const auto& [rows, cols] : {std::pair<std::uint64_t, std::uint64_t>{384, 256}, {256, 384}}) {
      CAPTURE(rows, cols);
      const Fp8Outcome o = solve_fp8(rows, cols, std::vector<float>(6, 1e20f), policy);
      REQUIRE(o.spectrum.gram_bits == FloatBits::fp64);  // recorded in vindex.h5
      REQUIRE(o.spectrum.eigen_bits == FloatBits::fp64);
      require_fp8_within_bars(o);
    }
  }
}

TEST_CASE("fp8 block scales of 1e-30 underflow the float32 Gram: every precision falls back to float64", "[accuracy][hostile]") {
  for (const PrecisionPolicy policy : kAllPolicies) {
    CAPTURE(precision_policy_name(policy));
    const Fp8Outcome o = solve_fp8(384, 256, std::vector<float>(6, 1e-30f), policy);
    REQUIRE(o.spectrum.frobenius_sq > 0);
    REQUIRE(o.spectrum.gram_bits == FloatBits::fp64);
    REQUIRE(o.spectrum.eigen_bits == FloatBits::fp64);
    require_fp8_within_bars(o);
  }
}

TEST_CASE("fp8 matrices mixing extreme and ordinary block scales meet the bars under every precision", "[accuracy][hostile]") {
  // Overflowing blocks beside ordinary and underflowing ones: float64 whatever the precision.
  for (const PrecisionPolicy policy : kAllPolicies) {
    CAPTURE(precision_policy_name(policy));
    const Fp8Outcome o = solve_fp8(384, 256, {1e20f, 1.0f, 1e-30f, 2e-3f, 1e-30f, 1e20f}, policy);
    REQUIRE(o.spectrum.gram_bits == FloatBits::fp64);
    require_fp8_within_bars(o);
  }
  // Products in float32's subnormal range (scales 1e-22): underflow could cost more than the
  // accuracy policy's error model allows, so the float32 Gram is not used.
  for (const PrecisionPolicy policy : kAllPolicies) {
    CAPTURE(precision_policy_name(policy));
    const Fp8Outcome o = solve_fp8(384, 256, std::vector<float>(6, 1e-22f), policy);
    REQUIRE(o.spectrum.gram_bits == FloatBits::fp64);
    require_fp8_within_bars(o);
  }
  // An underflowing block beside ordinary ones loses nothing the bars can see: the float32 Gram
  // stays (512 x 128: the other 384 rows keep the spectrum flat enough for it).
  const Fp8Outcome auto_path = solve_fp8(512, 128, {2e-3f, 1e-3f, 3e-3f, 1e-30f}, PrecisionPolicy::automatic);
  REQUIRE(auto_path.spectrum.gram_bits == FloatBits::fp32);
  require_fp8_within_bars(auto_path);
}

TEST_CASE("a float32 Gram whose eigenvalues are all zero is not accurate for a non-zero matrix", "[accuracy][hostile]") {
  const std::vector<int> ks{1, 2};
  const std::vector<double> zeros(4, 0.0);
  REQUIRE_FALSE(float32_gram_is_accurate(zeros, 1e-50, ks));
  REQUIRE(float32_gram_is_accurate(zeros, 0.0, ks));  // the zero matrix: exact either way
  const std::vector<double> nan{NAN, 1.0, 0.5, 0.25};
  REQUIRE_FALSE(float32_gram_is_accurate(nan, 2.0, ks));
}
