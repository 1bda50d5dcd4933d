// CRC-32 (reflected polynomial 0xEDB88320, table-driven) and FNV-1a 64.
#include "vindex/checksum.hpp"

#include <array>

namespace vindex {
namespace {

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
