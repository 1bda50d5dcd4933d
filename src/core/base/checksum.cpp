// CRC-32 (reflected polynomial 0xEDB88320, table-driven), FNV-1a 64, XXH64 and SHA-256.
#include "vindex/base/checksum.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

namespace vindex {
namespace {

// The streaming of a block hash: whole blocks of `bytes` go to `block` straight from the input,
// the rest waits in `buffer` (holding `buffered` bytes) for the next call.
template <std::size_t N, typename Block>
void feed_blocks(std::span<const std::byte> bytes, std::array<std::byte, N>& buffer, std::size_t& buffered, Block&& block) {
  const std::byte* p = bytes.data();
  std::size_t n = bytes.size();
  if (buffered > 0) {
    const std::size_t take = std::min(n, N - buffered);
    std::memcpy(buffer.data() + buffered, p, take);
    buffered += take;
    p += take;
    n -= take;
    if (buffered < N) return;
    block(buffer.data());
    buffered = 0;
  }
  for (; n >= N; p += N, n -= N) block(p);
  if (n > 0) {
    std::memcpy(buffer.data(), p, n);
    buffered = n;
  }
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

}  // namespace

std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc) {
  crc = ~crc;
  for (std::byte b : bytes) crc = kCrcTable[(crc ^ static_cast<std::uint32_t>(b)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

void Fnv1a64::add(std::span<const std::byte> bytes) {
  for (std::byte b : bytes) {
    hash_ ^= static_cast<std::uint64_t>(b);
    hash_ *= 0x100000001b3ull;
  }
}

void Fnv1a64::add(std::string_view text) {
  add(std::as_bytes(std::span(text.data(), text.size())));
  add(static_cast<std::uint64_t>(text.size()));  // so ("ab","c") and ("a","bc") differ
}

void Fnv1a64::add(std::uint64_t value) {
  std::array<std::byte, 8> le{};
  for (int i = 0; i < 8; ++i) le[static_cast<std::size_t>(i)] = static_cast<std::byte>(value >> (8 * i));
  add(std::span<const std::byte>(le));
}

}  // namespace vindex

// --- XXH64 (the xxHash specification, "XXH64 algorithm description") ---------------------------
namespace vindex {
namespace {

constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr std::uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr std::uint64_t kP5 = 0x27D4EB2F165667C5ull;

constexpr std::uint64_t rotl64(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

std::uint64_t read64(const std::byte* p) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

std::uint32_t read32(const std::byte* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

constexpr std::uint64_t xxh_round(std::uint64_t acc, std::uint64_t input) {
  acc += input * kP2;
  acc = rotl64(acc, 31);
  return acc * kP1;
}

constexpr std::uint64_t xxh_merge(std::uint64_t acc, std::uint64_t value) {
  acc ^= xxh_round(0, value);
  return acc * kP1 + kP4;
}

}  // namespace

Xxh64::Xxh64(std::uint64_t seed) : acc_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1}, seed_(seed) {}

void Xxh64::update(std::span<const std::byte> bytes) {
  total_ += bytes.size();
  feed_blocks(bytes, buffer_, buffered_, [this](const std::byte* stripe) {
    for (std::size_t i = 0; i < 4; ++i) acc_[i] = xxh_round(acc_[i], read64(stripe + 8 * i));
  });
}

void Xxh64::update(std::uint64_t value) {
  std::array<std::byte, 8> le{};
  for (int i = 0; i < 8; ++i) le[static_cast<std::size_t>(i)] = static_cast<std::byte>(value >> (8 * i));
  update(std::span<const std::byte>(le));
}

std::uint64_t Xxh64::value() const {
  std::uint64_t h = 0;
  if (total_ >= 32) {
    h = rotl64(acc_[0], 1) + rotl64(acc_[1], 7) + rotl64(acc_[2], 12) + rotl64(acc_[3], 18);
    for (std::uint64_t a : acc_) h = xxh_merge(h, a);
  } else {
    h = seed_ + kP5;
  }
  h += total_;
  const std::byte* p = buffer_.data();
  std::size_t n = buffered_;
  for (; n >= 8; p += 8, n -= 8) {
    h ^= xxh_round(0, read64(p));
    h = rotl64(h, 27) * kP1 + kP4;
  }
  if (n >= 4) {
    h ^= static_cast<std::uint64_t>(read32(p)) * kP1;
    h = rotl64(h, 23) * kP2 + kP3;
    p += 4;
    n -= 4;
  }
  for (; n > 0; ++p, --n) {
    h ^= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(*p)) * kP5;
    h = rotl64(h, 11) * kP1;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t xxh64(std::span<const std::byte> bytes, std::uint64_t seed) {
  Xxh64 h(seed);
  h.update(bytes);
  return h.value();
}

// --- SHA-256 (FIPS 180-4) -------------------------------------------------------------------
namespace {

constexpr std::array<std::uint32_t, 64> kSha256K{
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr32(std::uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

}  // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const std::byte* p) {
  std::array<std::uint32_t, 64> w{};
  for (std::size_t i = 0; i < 16; ++i)
    w[i] = (std::to_integer<std::uint32_t>(p[4 * i]) << 24) | (std::to_integer<std::uint32_t>(p[4 * i + 1]) << 16) |
           (std::to_integer<std::uint32_t>(p[4 * i + 2]) << 8) | std::to_integer<std::uint32_t>(p[4 * i + 3]);
  for (std::size_t i = 16; i < 64; ++i) {
    const std::uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const std::uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (std::size_t i = 0; i < 64; ++i) {
    const std::uint32_t t1 = h + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ((e & f) ^ (~e & g)) + kSha256K[i] + w[i];
    const std::uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
}

void Sha256::update(std::span<const std::byte> bytes) {
  total_ += bytes.size();
  feed_blocks(bytes, buffer_, buffered_, [this](const std::byte* p) { block(p); });
}

std::string Sha256::hex_digest() {
  const std::uint64_t bits = total_ * 8;
  std::array<std::byte, 72> pad{};
  pad[0] = std::byte{0x80};
  const std::size_t pad_len = (buffered_ < 56 ? 56 - buffered_ : 120 - buffered_);
  for (int i = 0; i < 8; ++i) pad[pad_len + static_cast<std::size_t>(i)] = static_cast<std::byte>(bits >> (56 - 8 * i));
  update(std::span<const std::byte>(pad.data(), pad_len + 8));
  std::string out;
  out.reserve(64);
  constexpr const char* kHex = "0123456789abcdef";
  for (std::uint32_t v : h_)
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xF]);
  return out;
}

std::string sha256_hex(std::span<const std::byte> bytes) {
  Sha256 h;
  h.update(bytes);
  return h.hex_digest();
}

}  // namespace vindex
