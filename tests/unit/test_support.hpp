// Helpers shared by the unit tests: fixture paths, temporary directories and a small safetensors
// writer for building valid and deliberately broken files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vindex_test {

std::filesystem::path fixture(const std::string& relative);
nlohmann::json read_json(const std::filesystem::path& path);
std::vector<float> read_f32(const std::filesystem::path& path);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Tensors are laid out back to back in the order added, as the reference writer does.
class SafetensorsBuilder {
 public:
  SafetensorsBuilder& add(const std::string& name, const std::string& dtype, std::vector<std::uint64_t> shape,
                          std::vector<std::byte> data);
  SafetensorsBuilder& add_f32(const std::string& name, std::vector<std::uint64_t> shape, const std::vector<float>& values);
  // The JSON header the file will carry (tests may edit it before bytes()).
  nlohmann::ordered_json& header() { return header_; }
  std::vector<std::byte> bytes() const;
  // Serialises an arbitrary header text in front of `data`.
  static std::vector<std::byte> raw(const std::string& header_text, const std::vector<std::byte>& data);
  void write(const std::filesystem::path& path) const;

 private:
  nlohmann::ordered_json header_ = nlohmann::ordered_json::object();
  std::vector<std::byte> data_;
};

void write_bytes(const std::filesystem::path& path, const std::vector<std::byte>& bytes);

// Replaces the JSON header of a safetensors file by edit(old header), keeping the data.
void rewrite_header(const std::filesystem::path& path, const std::function<std::string(std::string)>& edit);

// A model directory with config.json and one model.safetensors; returns its path.
std::filesystem::path write_model(const std::filesystem::path& dir, const nlohmann::json& config,
                                  const SafetensorsBuilder& tensors);

// Row-major matrix U diag(s) V^T with Haar-random U, V (float64 LAPACK QR of Gaussians).
std::vector<double> matrix_with_singular_values(std::uint64_t rows, std::uint64_t cols, const std::vector<double>& s,
                                                std::uint64_t seed);
// All singular values, descending, by float64 LAPACK (dgesdd) of a row-major matrix.
std::vector<double> float64_singular_values(std::vector<double> matrix, std::uint64_t rows, std::uint64_t cols);

}  // namespace vindex_test
