// The CPU backend's spectra against a float64 LAPACK SVD (dgesdd) of the same matrix, on flat
// (Kimi-K2-like) and steep (fp16-trained-like) spectra, tall and wide, at the bars of the README:
// every singular value within 1e-4 x sigma_max and var@k within 1e-6.
#include <cmath>
#include <cstring>
#include <random>

#include "catch_compat.hpp"
#include "cpu/gram_eigen_solver.hpp"
#include "test_support.hpp"
#include "vindex/checkpoint.hpp"
#include "vindex/stats.hpp"

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
