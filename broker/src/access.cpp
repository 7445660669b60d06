// The keys file's parser and the lookups the broker makes per HELLO and per
// REQUEST.
#include "access.h"

#include <fnmatch.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rejoin/transport/curve.h"

namespace rejoin::broker_internal {
namespace {

std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() &&
           (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
      ++i;
    }
    if (i >= line.size() || line[i] == '#') break;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' &&
           line[i] != '\r') {
      ++i;
    }
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
                    ch == '-';
    if (!ok) return false;
  }
  return true;
}

bool ValidGlob(std::string_view glob) {
  if (glob.empty() || glob.size() > 256) return false;
  for (char ch : glob) {
    const auto b = static_cast<unsigned char>(ch);
    if (b <= 0x20 || b >= 0x7f) return false;
  }
  return true;
}

}  // namespace

Result<AccessPolicy> AccessPolicy::Parse(std::string_view text,
                                         const std::string& origin) {
  AccessPolicy policy;
  std::vector<std::pair<std::string, int>> allowed_names;
  std::unordered_map<std::string, int> declared;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const std::vector<std::string_view> w = Words(line);
    if (w.empty()) continue;
    const std::string where = origin + ":" + std::to_string(number) + ": ";
    auto bad = [&](const std::string& why) {
      return Result<AccessPolicy>(ErrorCode::kInvalidArgument, where + why);
    };
    if (w[0] == "principal") {
      if (w.size() != 4 || w[2] != "key") {
        return bad("expected 'principal NAME key Z85KEY'");
      }
      if (!ValidName(w[1])) {
        return bad("principal name must be 1..64 of [A-Za-z0-9_.-]");
      }
      if (!transport::ValidZ85Key(w[3])) {
        return bad("not a 40-character z85 public key");
      }
      const std::string key(w[3]);
      if (policy.principals_.count(key) != 0) {
        return bad("key listed twice");
      }
      policy.principals_.emplace(key, std::string(w[1]));
      declared.emplace(std::string(w[1]), number);
    } else if (w[0] == "allow") {
      if (w.size() != 4 || (w[2] != "call" && w[2] != "serve")) {
        return bad("expected 'allow NAME call|serve SERVICE-GLOB'");
      }
      if (w[1] != "*" && !ValidName(w[1])) {
        return bad("principal name must be '*' or 1..64 of [A-Za-z0-9_.-]");
      }
      if (!ValidGlob(w[3])) {
        return bad("service glob must be 1..256 printable characters");
      }
      policy.rules_.push_back(
          Rule{std::string(w[1]), w[2] == "serve", std::string(w[3])});
      if (w[1] != "*") allowed_names.emplace_back(std::string(w[1]), number);
    } else {
      return bad("unknown rule '" + std::string(w[0]) +
                 "' (expected principal or allow)");
    }
  }
  for (const auto& [name, line] : allowed_names) {
    if (declared.count(name) == 0) {
      return Result<AccessPolicy>(
          ErrorCode::kInvalidArgument,
          origin + ":" + std::to_string(line) + ": principal '" + name +
              "' has no key (a 'principal " + name + " key ...' line)");
    }
  }
  return policy;
}

Result<AccessPolicy> AccessPolicy::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Result<AccessPolicy>(
        errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIoError,
        path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Result<AccessPolicy>(ErrorCode::kIoError, path + ": read failed");
  }
  return Parse(text.str(), path);
}

const std::string* AccessPolicy::PrincipalOf(std::string_view key) const {
  auto it = principals_.find(std::string(key));
  return it == principals_.end() ? nullptr : &it->second;
}

bool AccessPolicy::Allowed(std::string_view principal, bool serve,
                           const std::string& service) const {
  for (const Rule& r : rules_) {
    if (r.serve != serve) continue;
    if (r.principal != "*" && r.principal != principal) continue;
    if (::fnmatch(r.glob.c_str(), service.c_str(), 0) == 0) return true;
  }
  return false;
}

bool AccessPolicy::MayCall(std::string_view principal,
                           const std::string& service) const {
  return Allowed(principal, false, service);
}

bool AccessPolicy::MayServe(std::string_view principal,
                            const std::string& service) const {
  return Allowed(principal, true, service);
}

}  // namespace rejoin::broker_internal
