// Checksums for the journal and the model fingerprint: CRC-32 (IEEE 802.3, as zlib's crc32) to
// detect torn or corrupted journal records, FNV-1a 64 to name what a run was computed from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace vindex {

// CRC-32 of `bytes`, continuing from `crc` (0 to start).
std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc = 0);

// Incremental FNV-1a, 64 bits. Not cryptographic: it tells runs apart, it does not authenticate.
class Fnv1a64 {
 public:
  void add(std::span<const std::byte> bytes);
  void add(std::string_view text);
  void add(std::uint64_t value);  // as 8 little-endian bytes
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace vindex
