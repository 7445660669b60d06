// How libserver journals a request's digest (rejoin/proto/request_digest.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rejoin/proto/request_digest.h"

namespace rejoin::server_internal {

using proto::RequestDigest;

// Server EXECUTED records keep the digest in their own field
// (JournalOp::digest). Journals written before that field existed kept it in
// the record's `service` field as "rejoin.digest:" and 16 lowercase hex
// digits; ParseDigestField reads that form, nullopt for anything else (a
// record from before digests, whose duplicates are answered unchecked).
inline constexpr std::string_view kDigestPrefix = "rejoin.digest:";

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
