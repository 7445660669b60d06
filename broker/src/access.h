// The keys file: which CURVE public keys the broker lets in, the principal
// each one authenticates, and which services each principal may call and
// serve (docs/SECURITY.md, "The keys file"). Parsed strictly, with the line
// of the first error; an AccessPolicy is immutable once parsed, so a reload
// builds a new one and swaps it in whole.
//
// Format, one rule a line, `#` starts a comment:
//   principal NAME key Z85KEY        NAME [A-Za-z0-9_.-]{1,64}; a principal
//                                    may have several keys (rotation)
//   allow NAME call SERVICE-GLOB     NAME may send REQUESTs for the services
//   allow NAME serve SERVICE-GLOB    NAME may register as a server for them
// NAME in `allow` may be `*` (every principal). A glob is fnmatch(3): `*`,
// `?`, `[...]`. A key listed twice, or an `allow` for an undeclared
// principal, is an error. Nothing is allowed unless a rule says so.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rejoin/proto/status.h"

namespace rejoin::broker_internal {

class AccessPolicy {
 public:
  // Errors: kInvalidArgument naming `origin` (a file name) and the line.
  static Result<AccessPolicy> Parse(std::string_view text,
                                    const std::string& origin);
  // Reads and parses the file. Errors: kNotFound, kIoError, as Parse.
  static Result<AccessPolicy> Load(const std::string& path);

  // The principal a z85 public key authenticates, nullptr for a key not
  // listed.
  const std::string* PrincipalOf(std::string_view key) const;
  bool MayCall(std::string_view principal, const std::string& service) const;
  bool MayServe(std::string_view principal, const std::string& service) const;
  std::size_t keys() const { return principals_.size(); }

 private:
  struct Rule {
    std::string principal;  // "*": everyone
    bool serve = false;     // else call
    std::string glob;
  };
  bool Allowed(std::string_view principal, bool serve,
               const std::string& service) const;

  std::unordered_map<std::string, std::string> principals_;  // key -> name
  std::vector<Rule> rules_;
};

// The namespace rule (docs/SECURITY.md): an id a principal names for itself
// (a session id, a server id) begins with its name and '/'. Everyone's ids
// are fine for the anonymous principal (empty: no CURVE).
inline bool IdOwnedBy(std::string_view id, std::string_view principal) {
  return principal.empty() || (id.size() > principal.size() + 1 &&
                               id.substr(0, principal.size()) == principal &&
                               id[principal.size()] == '/');
}

}  // namespace rejoin::broker_internal
