// How libserver journals a request's digest (rejoin/proto/request_digest.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rejoin/proto/request_digest.h"

namespace rejoin::server_internal {

using proto::RequestDigest;

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
