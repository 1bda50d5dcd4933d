// Checksums: CRC-32 (IEEE 802.3, as zlib's crc32) to detect torn or corrupted journal records;
// FNV-1a 64 for small identities; XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0) for the
// weight digests and the model fingerprint, fast enough to run over every byte a run reads;
// SHA-256 (FIPS 180-4) for the files of an output set, which standard tools (sha256sum,
// Python's hashlib) can check.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
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

// Incremental XXH64: update() any number of times, then value(); equal to the one-shot hash of
// the concatenated bytes (xxhash's XXH64(data, len, seed)). Not cryptographic.
class Xxh64 {
 public:
  explicit Xxh64(std::uint64_t seed = 0);
  void update(std::span<const std::byte> bytes);
  void update(std::string_view text) { update(std::as_bytes(std::span(text.data(), text.size()))); }
  void update(std::uint64_t value);  // as 8 little-endian bytes
  std::uint64_t value() const;

 private:
  std::array<std::uint64_t, 4> acc_{};
  std::array<std::byte, 32> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
  std::uint64_t seed_ = 0;
};

std::uint64_t xxh64(std::span<const std::byte> bytes, std::uint64_t seed = 0);

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::byte> bytes);
  void update(std::string_view text) { update(std::as_bytes(std::span(text.data(), text.size()))); }
  // The digest as 64 lowercase hex digits (the object is spent afterwards).
  std::string hex_digest();

 private:
  void block(const std::byte* p);
  std::array<std::uint32_t, 8> h_{};
  std::array<std::byte, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
};

std::string sha256_hex(std::span<const std::byte> bytes);

}  // namespace vindex
