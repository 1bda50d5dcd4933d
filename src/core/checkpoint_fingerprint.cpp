// Checkpoint::fingerprint: what journals and slices record to refuse mixing different models.
#include <fmt/format.h>

#include "vindex/checkpoint.hpp"
#include "vindex/checksum.hpp"

namespace vindex {

std::string Checkpoint::fingerprint() const {
  Fnv1a64 h;
  h.add(config_.dump());
  h.add(static_cast<std::uint64_t>(shards_.size()));
  for (const Shard& shard : shards_) {
    h.add(shard.file_name);
    h.add(shard.file_size);
    h.add(shard.header.header_size);
    for (const auto& [key, value] : shard.header.metadata) {
      h.add(key);
      h.add(value);
    }
    for (const TensorInfo& t : shard.header.tensors) {
      h.add(t.name);
      h.add(dtype_name(t.dtype));
      h.add(static_cast<std::uint64_t>(t.shape.size()));
      for (std::uint64_t d : t.shape) h.add(d);
      h.add(t.begin);
      h.add(t.end);
    }
  }
  return fmt::format("{:016x}", h.value());
}

}  // namespace vindex
