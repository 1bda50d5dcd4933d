// Test helpers: fixtures, temporary directories, safetensors writing, float64 LAPACK references.
#include "test_support.hpp"

#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

namespace vindex_test {
namespace fs = std::filesystem;

fs::path fixture(const std::string& relative) { return fs::path(VINDEX_FIXTURES_DIR) / relative; }

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return nlohmann::json::parse(in);
}

std::vector<float> read_f32(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "vindex-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

SafetensorsBuilder& SafetensorsBuilder::add(const std::string& name, const std::string& dtype,
                                            std::vector<std::uint64_t> shape, std::vector<std::byte> data) {
  const std::uint64_t begin = data_.size();
  data_.insert(data_.end(), data.begin(), data.end());
  header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, data_.size()}}};
  return *this;
}

SafetensorsBuilder& SafetensorsBuilder::add_f32(const std::string& name, std::vector<std::uint64_t> shape,
                                                const std::vector<float>& values) {
  std::vector<std::byte> data(values.size() * sizeof(float));
  std::memcpy(data.data(), values.data(), data.size());
  return add(name, "F32", std::move(shape), std::move(data));
}

std::vector<std::byte> SafetensorsBuilder::raw(const std::string& text, const std::vector<std::byte>& data) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xFF);
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<std::byte> SafetensorsBuilder::bytes() const { return raw(header_.dump(), data_); }

void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void rewrite_header(const fs::path& path, const std::function<std::string(std::string)>& edit) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::string text = edit(std::string(bytes.data() + 8, n));
  std::vector<std::byte> data(bytes.size() - 8 - n);
  std::memcpy(data.data(), bytes.data() + 8 + n, data.size());
  write_bytes(path, SafetensorsBuilder::raw(text, data));
}

void SafetensorsBuilder::write(const fs::path& path) const { write_bytes(path, bytes()); }

fs::path write_model(const fs::path& dir, const nlohmann::json& config, const SafetensorsBuilder& tensors) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  tensors.write(dir / "model.safetensors");
  return dir;
}

namespace {

// Column-major m x n matrix with orthonormal columns: Q of the QR of a Gaussian matrix.
std::vector<double> orthonormal_columns(std::uint64_t m, std::uint64_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  std::vector<double> a(m * n);
  for (double& x : a) x = normal(rng);
  std::vector<double> tau(n);
  const auto M = static_cast<lapack_int>(m), N = static_cast<lapack_int>(n);
  if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, M, N, a.data(), M, tau.data()) != 0) throw std::runtime_error("dgeqrf");
  if (LAPACKE_dorgqr(LAPACK_COL_MAJOR, M, N, N, a.data(), M, tau.data()) != 0) throw std::runtime_error("dorgqr");
  return a;
}

}  // namespace

std::vector<double> matrix_with_singular_values(std::uint64_t rows, std::uint64_t cols, const std::vector<double>& s,
                                                std::uint64_t seed) {
  const std::uint64_t r = std::min(rows, cols);
  if (s.size() != r) throw std::invalid_argument("need min(rows, cols) singular values");
  std::mt19937_64 rng(seed);
  const std::vector<double> u = orthonormal_columns(rows, r, rng);
  const std::vector<double> v = orthonormal_columns(cols, r, rng);
  std::vector<double> us = u;
  for (std::uint64_t k = 0; k < r; ++k)
    for (std::uint64_t i = 0; i < rows; ++i) us[i + k * rows] *= s[k];
  // Row-major W is column-major W^T = V (U diag(s))^T: a cols x rows product.
  std::vector<double> w(rows * cols);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, static_cast<int>(cols), static_cast<int>(rows),
              static_cast<int>(r), 1.0, v.data(), static_cast<int>(cols), us.data(), static_cast<int>(rows), 0.0,
              w.data(), static_cast<int>(cols));
  return w;
}

std::vector<double> float64_singular_values(std::vector<double> a, std::uint64_t rows, std::uint64_t cols) {
  std::vector<double> s(std::min(rows, cols));
  const auto m = static_cast<lapack_int>(rows), n = static_cast<lapack_int>(cols);
  // Row-major rows x cols is column-major cols x rows (its transpose: same singular values).
  if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, m, a.data(), n, s.data(), nullptr, 1, nullptr, 1) != 0)
    throw std::runtime_error("dgesdd");
  return s;
}

}  // namespace vindex_test
