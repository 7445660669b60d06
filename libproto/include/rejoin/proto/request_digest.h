// A 64-bit digest of a request (service and payload). The server journals
// it with every operation it holds and the broker keeps it with every answer
// it retains, so that a REQUEST reusing a seq for other content is told apart
// from a true duplicate and answered `conflict` (PROTOCOL.md §4.3). The value
// is journaled, so the function must never change: a plain word-at-a-time
// multiply-rotate hash with a final mix, not std::hash.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace rejoin::proto {

inline std::uint64_t RequestDigest(std::string_view service,
                                   std::string_view payload) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  std::uint64_t h = 0x7265'6A6F'696E'6431ULL;  // "rejoind1"
  auto mix = [&h](std::uint64_t w) {
    h ^= w;
    h *= kMul;
    h = (h << 31) | (h >> 33);
  };
  auto feed = [&mix](std::string_view bytes) {
    // The length first, so that ("ab", "c") and ("a", "bc") differ.
    mix(bytes.size());
    std::size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      // Words are read little-endian whatever the host's byte order.
      std::uint64_t w = 0;
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(&w, bytes.data() + i, 8);
      } else {
        for (std::size_t b = 0; b < 8; ++b) {
          w |= static_cast<std::uint64_t>(
                   static_cast<unsigned char>(bytes[i + b]))
               << (8 * b);
        }
      }
      mix(w);
    }
    std::uint64_t tail = 0;
    for (std::size_t b = 0; i < bytes.size(); ++i, ++b) {
      tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i]))
              << (8 * b);
    }
    mix(tail);
  };
  feed(service);
  feed(payload);
  // murmur3's finaliser: every input bit reaches every output bit.
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace rejoin::proto
