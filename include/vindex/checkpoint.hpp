// A Hugging Face checkpoint directory: config.json plus either model.safetensors.index.json and its
// shards, or a single model.safetensors. Opening validates the index and every shard header; shard
// data is memory-mapped only when a tensor of that shard is viewed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/mapped_file.hpp"
#include "vindex/safetensors.hpp"

namespace vindex {

struct Shard {
  std::string file_name;       // as named by the index, relative to the model directory
  std::filesystem::path path;  // model directory / file_name
  std::uint64_t file_size = 0;
  SafetensorsHeader header;
};

// Where a tensor lives: its header entry and its shard.
struct TensorRecord {
  const TensorInfo* info = nullptr;
  std::size_t shard = 0;
};

// The bytes of one tensor inside a mapped shard. Holding the view keeps the mapping alive, so a
// view can never outlive its bytes.
class TensorView {
 public:
  TensorView() = default;
  TensorView(std::shared_ptr<const MappedFile> mapping, const TensorInfo* info, std::uint64_t file_offset);

  const TensorInfo& info() const { return *info_; }
  const std::string& name() const { return info_->name; }
  const std::string& file() const { return mapping_->path(); }
  std::span<const std::byte> bytes() const;
  void prefetch() const noexcept;
  void release() const noexcept;
  // The same for bytes [begin, end) of the tensor (one expert's slice of a fused tensor).
  void prefetch(std::uint64_t begin, std::uint64_t end) const noexcept;
  void release(std::uint64_t begin, std::uint64_t end) const noexcept;

 private:
  std::shared_ptr<const MappedFile> mapping_;
  const TensorInfo* info_ = nullptr;
  std::uint64_t file_offset_ = 0;
};

class Checkpoint {
 public:
  // Reads config.json and the index (or the single file), validates every shard header and that
  // each tensor the index names is present in its shard.
  static Checkpoint open(const std::filesystem::path& directory);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const std::filesystem::path& directory() const { return directory_; }
  const std::filesystem::path& config_path() const { return config_path_; }
  const nlohmann::json& config() const { return config_; }
  // The file that lists the tensors: the index, or the single model.safetensors.
  const std::filesystem::path& listing_path() const { return listing_path_; }
  std::span<const Shard> shards() const { return shards_; }
  // Tensor names in index order (or file order for a single file).
  std::span<const std::string> tensor_names() const { return names_; }
  const TensorRecord* find(std::string_view name) const;
  std::uint64_t total_tensor_bytes() const;
  // 16 hex digits naming what a run reads: config.json and every shard's name, size and header
  // (tensor names, dtypes, shapes, offsets). The weights themselves are not hashed (a terabyte);
  // a model rewritten in place with identical headers would not be told apart.
  std::string fingerprint() const;

  // Maps the tensor's shard on first use (thread-safe) and returns a view of its bytes.
  TensorView view(const TensorRecord& record) const;

 private:
  Checkpoint() = default;

  std::filesystem::path directory_;
  std::filesystem::path config_path_;
  std::filesystem::path listing_path_;
  nlohmann::json config_;
  std::vector<Shard> shards_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, TensorRecord> records_;
  mutable std::unique_ptr<std::mutex> map_mutex_ = std::make_unique<std::mutex>();
  mutable std::vector<std::shared_ptr<const MappedFile>> mappings_;
};

// Parses model.safetensors.index.json: its weight_map as (tensor, shard file name) pairs in file
// order. Shard names must be plain file names (no directory part, no "..": they come from a
// download). Malformed text is a FormatError naming `label` and the tensor.
std::vector<std::pair<std::string, std::string>> parse_safetensors_index(std::string_view text, const std::string& label);
inline constexpr std::uint64_t kMaxIndexBytes = 512ull << 20;

inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kConfigFileName = "config.json";

}  // namespace vindex
