// A Hugging Face checkpoint directory: config.json plus either model.safetensors.index.json and its
// shards, or a single model.safetensors. Or a GGUF file (llama.cpp's), given as the file or as a
// directory that holds one .gguf file and no config.json: its metadata stands in for config.json
// (config() holds its scalar keys, as GGUF names them) and its tensors are listed with numpy's
// shapes (outermost first: GGUF's dims reversed). Opening validates the index and every shard
// header and keeps each shard open; tensor bytes are read with pread into the reader's buffers
// (shard_file.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/format/safetensors_header.hpp"
#include "vindex/format/shard_file.hpp"

namespace vindex {

struct Shard {
  std::string file_name;       // as named by the index, relative to the model directory
  std::filesystem::path path;  // model directory / file_name
  std::uint64_t file_size = 0;
  SafetensorsHeader header;          // for a GGUF file: its tensors, translated (ggml_type set when quantized)
  std::uint64_t data_offset = 0;     // where the tensors' bytes begin (begin/end are relative to it)
  std::shared_ptr<const ShardFile> file;  // open since the header was read from it
};

// Where a tensor lives: its header entry and its shard.
struct TensorRecord {
  const TensorInfo* info = nullptr;
  std::size_t shard = 0;
};

// One tensor in its shard. Holding the view keeps the shard open; its bytes are read on demand.
class TensorView {
 public:
  TensorView() = default;
  TensorView(std::shared_ptr<const ShardFile> file, const TensorInfo* info, std::uint64_t file_offset);

  const TensorInfo& info() const { return *info_; }
  const std::string& name() const { return info_->name; }
  const std::string& file() const { return file_->path(); }
  // Reads bytes [begin, end) of the tensor into `out`; a shard that ends early (truncated during
  // the run) or cannot be read is an InputError naming the file and this tensor.
  void read(std::uint64_t begin, std::uint64_t end, std::byte* out) const;
  // The whole tensor (small ones: scales, biases).
  std::vector<std::byte> read_all() const;
  // Hints that bytes [begin, end) of the tensor will be read soon.
  void will_need(std::uint64_t begin, std::uint64_t end) const noexcept;

 private:
  std::shared_ptr<const ShardFile> file_;
  const TensorInfo* info_ = nullptr;
  std::uint64_t file_offset_ = 0;
};

class Checkpoint {
 public:
  // Reads config.json and the index (or the single file), validates every shard header and that
  // each tensor the index names is present in its shard.
  static Checkpoint open(const std::filesystem::path& directory);

  // A GGUF checkpoint: config() holds the GGUF metadata's scalar values by their GGUF keys
  // ("general.architecture", "llama.block_count", ...); arrays (the vocabulary) are left out.
  bool is_gguf() const { return gguf_; }

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
  // A view of the tensor in its (open) shard.
  TensorView view(const TensorRecord& record) const;

 private:
  Checkpoint() = default;

  std::filesystem::path directory_;
  std::filesystem::path config_path_;
  std::filesystem::path listing_path_;
  nlohmann::json config_;
  bool gguf_ = false;
  std::vector<Shard> shards_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, TensorRecord> records_;
};


// What a tensor's elements are, for reports: its dtype ("BF16"), or its ggml block type ("Q4_K")
// for a block-quantized GGUF tensor.
std::string stored_type_name(const TensorInfo& info);

inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kConfigFileName = "config.json";

}  // namespace vindex
