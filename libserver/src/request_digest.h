// A 64-bit digest of a request (service and payload), kept with every
// operation the server holds so that a REQUEST reusing a held seq for other
// content is told apart from a true duplicate (PROTOCOL.md §4.3, `conflict`).
// The value is journaled, so the function must never change: it is a plain
// word-at-a-time multiply-rotate hash with a final mix, not std::hash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rejoin::server_internal {

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
      std::uint64_t w = 0;
      for (std::size_t b = 0; b < 8; ++b) {
        w |=
            static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i + b]))
            << (8 * b);
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

// The digest rides in the `service` field of a server EXECUTED record (whose
// service name nothing reads once the response is stored; JOURNAL.md §3,
// record type 2): "rejoin.digest:" and 16 lowercase hex digits. A record
// written before digests existed carries the service name there instead and
// yields nullopt: its duplicates are answered from the record, unchecked.
inline constexpr std::string_view kDigestPrefix = "rejoin.digest:";

inline std::string DigestField(std::uint64_t digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kDigestPrefix);
  for (int shift = 60; shift >= 0; shift -= 4) {
    out.push_back(kHex[(digest >> shift) & 0xF]);
  }
  return out;
}

inline std::optional<std::uint64_t> ParseDigestField(std::string_view field) {
  if (field.size() != kDigestPrefix.size() + 16 ||
      field.substr(0, kDigestPrefix.size()) != kDigestPrefix) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (char c : field.substr(kDigestPrefix.size())) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

}  // namespace rejoin::server_internal
