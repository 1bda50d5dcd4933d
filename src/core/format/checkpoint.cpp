// Opening a checkpoint directory: config, shard index, header validation, tensor reads.
#include "vindex/format/checkpoint.hpp"
#include "vindex/format/safetensors_index.hpp"
#include "vindex/format/gguf.hpp"

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace {

constexpr std::uint64_t kMaxConfigBytes = 16ull << 20;

bool is_within(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p)
    if (p == path.end() || *p != *d) return false;
  return true;
}

// Every file read from the model directory must resolve inside it -- or, for a Hugging Face hub
// cache snapshot (.../snapshots/<revision>, whose files are symbolic links to ../../blobs/<hash>),
// inside that repository's blobs directory. A link that leads anywhere else is refused.
void check_inside_model(const std::filesystem::path& directory, const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::canonical(directory, ec);
  if (ec) throw InputError(directory.string(), "", "cannot be resolved: " + ec.message());
  const fs::path target = fs::canonical(file, ec);
  if (ec) throw InputError(file.string(), "", "cannot be resolved: " + ec.message());
  if (is_within(target, dir)) return;
  // The hub cache: .../models--org--name/snapshots/<revision>/<file> -> that repository's blobs/<hash>.
  const fs::path repo = dir.parent_path().parent_path();
  const std::string repo_name = repo.filename().string();
  if (dir.parent_path().filename() == "snapshots" &&
      (repo_name.starts_with("models--") || repo_name.starts_with("datasets--")) &&
      target.parent_path() == repo / "blobs")
    return;
  throw FormatError(file.string(), "",
                    fmt::format("leads outside the model directory (to {}); refusing to read it", target.string()));
}

// The GGUF metadata's scalar values as JSON, by their GGUF keys (arrays left out).
nlohmann::json gguf_scalars(const GgufMetadata& metadata) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, v] : metadata.entries()) {
    if (const auto* u = std::get_if<std::uint64_t>(&v.value)) out[key] = *u;
    else if (const auto* i = std::get_if<std::int64_t>(&v.value)) out[key] = *i;
    else if (const auto* d = std::get_if<double>(&v.value)) out[key] = *d;
    else if (const auto* b = std::get_if<bool>(&v.value)) out[key] = *b;
    else if (const auto* t = std::get_if<std::string>(&v.value)) out[key] = *t;
  }
  return out;
}

// A GGUF tensor as the checkpoint lists it: numpy's shape, F32/F16/BF16 as their dtypes, block
// types as U8 with their ggml type.
TensorInfo gguf_tensor_info(const GgufTensorInfo& t, std::uint64_t data_offset) {
  TensorInfo info;
  info.name = t.name;
  info.shape = t.shape();
  info.begin = t.offset - data_offset;
  info.end = info.begin + t.byte_size;
  switch (t.type) {
    case 0: info.dtype = DType::F32; break;
    case 1: info.dtype = DType::F16; break;
    case 30: info.dtype = DType::BF16; break;
    default: info.dtype = DType::U8; info.ggml_type = t.type; break;
  }
  return info;
}

// The .gguf files `path` names: itself (with its sibling splits when its name is llama.cpp's
// "<name>-0000N-of-0000M.gguf"), or the .gguf files of a directory without config.json.
std::vector<std::filesystem::path> gguf_files(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (path.extension() != ".gguf")
      throw InputError(path.string(), "",
                       "is not a directory (expected a model directory with config.json) nor a .gguf file");
    static const std::regex split_name(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
    std::smatch m;
    const std::string name = path.filename().string();
    if (!std::regex_match(name, m, split_name)) return {path};
    const int count = std::stoi(m[3].str());
    std::vector<fs::path> files;
    for (int i = 1; i <= count; ++i) {
      const fs::path sibling = path.parent_path() / fmt::format("{}-{:05d}-of-{:05d}.gguf", m[1].str(), i, count);
      if (!fs::exists(sibling, ec))
        throw InputError(sibling.string(), "", fmt::format("is missing: {} is split {} of {}", name, m[2].str(), count));
      if (sibling != path) check_inside_model(path.parent_path().empty() ? fs::path(".") : path.parent_path(), sibling);
      files.push_back(sibling);
    }
    return files;
  }
  if (!fs::is_directory(path, ec) || fs::exists(path / kConfigFileName, ec)) return {};
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (entry.path().extension() == ".gguf") found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  for (const fs::path& f : found) check_inside_model(path, f);  // as for safetensors shards
  return found;  // more than one: the splits of one model, or an error (check_gguf_splits)
}

}  // namespace

TensorView::TensorView(std::shared_ptr<const ShardFile> file, const TensorInfo* info, std::uint64_t file_offset)
    : file_(std::move(file)), info_(info), file_offset_(file_offset) {}

void TensorView::read(std::uint64_t begin, std::uint64_t end, std::byte* out) const {
  if (begin > end || end > info_->byte_size())
    throw InternalError(fmt::format("read of bytes [{}, {}) of the {} bytes of '{}'", begin, end, info_->byte_size(), info_->name));
  file_->read(file_offset_ + begin, end - begin, out, info_->name);
}

std::vector<std::byte> TensorView::read_all() const {
  std::vector<std::byte> bytes(info_->byte_size());
  read(0, bytes.size(), bytes.data());
  return bytes;
}

void TensorView::will_need(std::uint64_t begin, std::uint64_t end) const noexcept {
  end = std::min(end, info_->byte_size());
  if (begin < end) file_->will_need(file_offset_ + begin, end - begin);
}

Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::open(const std::filesystem::path& directory) {
  namespace fs = std::filesystem;
  Checkpoint ckpt;
  ckpt.directory_ = directory;
  std::error_code ec;
  if (const std::vector<fs::path> files = gguf_files(directory); !files.empty()) {
    ckpt.gguf_ = true;
    std::vector<std::shared_ptr<const ShardFile>> opened;
    std::vector<GgufHeader> headers;
    std::vector<std::string> labels;
    for (const fs::path& f : files) {
      opened.push_back(std::make_shared<const ShardFile>(f));
      labels.push_back(f.string());
      headers.push_back(read_gguf_header(opened.back()->descriptor(), labels.back()));
    }
    if (headers.size() == 1 && headers[0].split && headers[0].split->count > 1)
      throw InputError(labels[0], "", fmt::format("is split {} of {}; name the first split or their directory",
                                                   headers[0].split->no + 1, headers[0].split->count));
    if (headers.size() > 1 && std::any_of(headers.begin(), headers.end(), [](const GgufHeader& h) { return !h.split; }))
      throw InputError(directory.string(), "",
                       fmt::format("holds {} .gguf files that are not the splits of one model ({} ...); pass the one to read",
                                   headers.size(), files.front().filename().string()));
    std::vector<const GgufHeader*> pointers;
    for (const GgufHeader& h : headers) pointers.push_back(&h);
    const std::vector<std::size_t> order = check_gguf_splits(pointers, labels);
    const fs::path& first = files[order.front()];
    ckpt.directory_ = first.parent_path().empty() ? fs::path(".") : first.parent_path();
    ckpt.config_path_ = first;
    ckpt.listing_path_ = first;
    ckpt.config_ = gguf_scalars(headers[order.front()].metadata);  // split 0 holds the model's metadata
    for (std::size_t i : order) {
      const GgufHeader& header = headers[i];
      Shard shard;
      shard.file_name = files[i].filename().string();
      shard.path = files[i];
      shard.file_size = header.file_size;
      shard.data_offset = header.data_offset;
      shard.header.header_size = header.header_size;
      shard.header.data_size = header.file_size - header.data_offset;
      for (const GgufTensorInfo& t : header.tensors) shard.header.tensors.push_back(gguf_tensor_info(t, header.data_offset));
      shard.header.build_index();
      shard.file = opened[i];
      ckpt.shards_.push_back(std::move(shard));
    }
    for (std::size_t id = 0; id < ckpt.shards_.size(); ++id)
      for (const TensorInfo& t : ckpt.shards_[id].header.tensors) {
        ckpt.records_.emplace(t.name, TensorRecord{&t, id});
        ckpt.names_.push_back(t.name);
      }
    return ckpt;
  }
  if (!fs::is_directory(directory, ec))
    throw InputError(directory.string(), "", "is not a directory (expected a model directory with config.json)");

  ckpt.config_path_ = directory / kConfigFileName;
  if (!fs::exists(ckpt.config_path_, ec)) throw InputError(ckpt.config_path_.string(), "", "is missing");
  check_inside_model(directory, ckpt.config_path_);
  ckpt.config_ = read_json_file(ckpt.config_path_, kMaxConfigBytes);
  if (!ckpt.config_.is_object()) throw FormatError(ckpt.config_path_.string(), "", "is not a JSON object");

  // (tensor name, shard file name) in index order
  std::vector<std::pair<std::string, std::string>> entries;
  const fs::path index_path = directory / kIndexFileName;
  const fs::path single_path = directory / kSingleFileName;
  if (fs::exists(index_path, ec)) {
    ckpt.listing_path_ = index_path;
    check_inside_model(directory, index_path);
    entries = parse_safetensors_index(read_text_file(index_path, kMaxIndexBytes), index_path.string());
  } else if (fs::exists(single_path, ec)) {
    ckpt.listing_path_ = single_path;  // filled from the header below
  } else {
    throw InputError(directory.string(), "",
                     fmt::format("holds neither {} nor {}", kIndexFileName, kSingleFileName));
  }

  // Validate each shard header once, in order of first appearance.
  std::unordered_map<std::string, std::size_t> shard_ids;
  auto add_shard = [&](const std::string& file_name) {
    auto [it, inserted] = shard_ids.emplace(file_name, ckpt.shards_.size());
    if (!inserted) return it->second;
    Shard shard;
    shard.file_name = file_name;
    shard.path = directory / file_name;
    if (!fs::exists(shard.path, ec))
      throw InputError(shard.path.string(), "", fmt::format("is named by {} but does not exist", kIndexFileName));
    check_inside_model(directory, shard.path);
    auto file = std::make_shared<const ShardFile>(shard.path);
    shard.header = read_safetensors_header(file->descriptor(), shard.path.string());
    shard.file_size = shard.header.data_offset() + shard.header.data_size;
    shard.data_offset = shard.header.data_offset();
    shard.file = std::move(file);
    ckpt.shards_.push_back(std::move(shard));
    return it->second;
  };

  if (entries.empty()) {
    const std::size_t id = add_shard(kSingleFileName);
    for (const TensorInfo& t : ckpt.shards_[id].header.tensors) entries.emplace_back(t.name, kSingleFileName);
  }
  for (const auto& [tensor, file] : entries) add_shard(file);

  // Shard headers are final now; records may point into them.
  ckpt.records_.reserve(entries.size());
  ckpt.names_.reserve(entries.size());
  for (const auto& [tensor, file] : entries) {
    const std::size_t id = shard_ids.at(file);
    const TensorInfo* info = ckpt.shards_[id].header.find(tensor);
    if (!info)
      throw FormatError(ckpt.shards_[id].path.string(), tensor,
                        fmt::format("is listed in {} but missing from this shard", kIndexFileName));
    ckpt.records_.emplace(tensor, TensorRecord{info, id});
    ckpt.names_.push_back(tensor);
  }
  return ckpt;
}

std::string stored_type_name(const TensorInfo& info) {
  if (info.ggml_type)
    if (const GgmlTypeTraits* t = ggml_type_traits(*info.ggml_type)) return std::string(t->name);
  return std::string(dtype_name(info.dtype));
}

const TensorRecord* Checkpoint::find(std::string_view name) const {
  const auto it = records_.find(std::string(name));
  return it == records_.end() ? nullptr : &it->second;
}

std::uint64_t Checkpoint::total_tensor_bytes() const {
  std::uint64_t total = 0;
  for (const auto& [name, record] : records_) total += record.info->byte_size();
  return total;
}

TensorView Checkpoint::view(const TensorRecord& record) const {
  const Shard& shard = shards_.at(record.shard);
  return TensorView(shard.file, record.info, shard.data_offset + record.info->begin);
}

}  // namespace vindex
