// Key files and CURVE socket options. The parser is strict: every line is
// `public-key KEY`, `secret-key KEY`, blank or a comment, each name at most
// once; anything else names its line.
#include "rejoin/transport/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rejoin::transport {
namespace {

Status Bad(const std::string& where, const std::string& why) {
  return Status(ErrorCode::kInvalidArgument, where + ": " + why);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

bool ValidZ85Key(std::string_view key) {
  // libzmq decodes up to the first NUL: a NUL inside the 40 characters
  // would pass for a shorter key.
  if (key.size() != kZ85KeyChars) return false;
  if (key.find('\0') != std::string_view::npos) return false;
  const std::string text(key);
  std::array<std::uint8_t, 32> raw{};
  return zmq_z85_decode(raw.data(), text.c_str()) != nullptr;
}

Result<KeyPair> GenerateKeyPair() {
  if (!CurveAvailable()) {
    return Status(ErrorCode::kUnavailable, "libzmq was built without CURVE");
  }
  char pub[kZ85KeyChars + 1] = {};
  char sec[kZ85KeyChars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Status(ErrorCode::kIoError,
                  std::string("zmq_curve_keypair: ") + zmq_strerror(errno));
  }
  return KeyPair{pub, sec};
}

Result<std::string> PublicKeyOf(const std::string& secret_key) {
  if (!ValidZ85Key(secret_key)) {
    return Status(ErrorCode::kInvalidArgument, "not a z85 key");
  }
  char pub[kZ85KeyChars + 1] = {};
  if (zmq_curve_public(pub, secret_key.c_str()) != 0) {
    return Status(ErrorCode::kUnavailable, "libzmq was built without CURVE");
  }
  return std::string(pub);
}

Result<KeyPair> ParseKeyFile(std::string_view text, const std::string& name,
                             bool need_secret) {
  KeyPair keys;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    const std::string where = name + ":" + std::to_string(number);
    if (line.find('\0') != std::string_view::npos) {
      return Bad(where, "a NUL byte");
    }
    std::string_view rest = Trim(line);
    if (rest.empty() || rest.front() == '#') continue;
    const std::size_t space = rest.find_first_of(" \t");
    if (space == std::string_view::npos) {
      return Bad(where, "expected 'public-key KEY' or 'secret-key KEY'");
    }
    const std::string_view field = rest.substr(0, space);
    const std::string_view value = Trim(rest.substr(space));
    std::string* slot = field == "public-key"   ? &keys.public_key
                        : field == "secret-key" ? &keys.secret_key
                                                : nullptr;
    if (slot == nullptr) {
      return Bad(where, "unknown field '" + std::string(field) + "'");
    }
    if (!slot->empty()) {
      return Bad(where, std::string(field) + " given twice");
    }
    if (!ValidZ85Key(value)) {
      return Bad(where, std::string(field) + " is not a 40-character z85 key");
    }
    *slot = std::string(value);
  }
  if (keys.public_key.empty()) return Bad(name, "no public-key line");
  if (need_secret) {
    if (keys.secret_key.empty()) {
      return Bad(name, "no secret-key line (a public key file?)");
    }
    Result<std::string> derived = PublicKeyOf(keys.secret_key);
    if (!derived.ok()) return derived.status();
    if (*derived != keys.public_key) {
      return Bad(name, "public-key does not belong to secret-key");
    }
  }
  return keys;
}

std::string KeyFileText(const KeyPair& keys, bool with_secret) {
  std::string text = "# rejoin CURVE ";
  text += with_secret ? "key pair: keep it private" : "public key";
  text += "\npublic-key " + keys.public_key + "\n";
  if (with_secret) text += "secret-key " + keys.secret_key + "\n";
  return text;
}

Result<KeyPair> ReadKeyFile(const std::string& path, bool need_secret) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIoError,
                  path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Bad(path, "not a regular file");
  if (st.st_size > kMaxKeyFileBytes) {
    return Bad(path, "larger than " + std::to_string(kMaxKeyFileBytes) +
                         " bytes: not a key file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::kIoError, path + ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return Status(ErrorCode::kIoError, path + ": cannot read");
  Result<KeyPair> keys = ParseKeyFile(bytes.str(), path, need_secret);
  if (!keys.ok()) return keys.status();
  if (need_secret && (st.st_mode & 077) != 0) {
    return Bad(path,
               "a secret key file must be readable by its owner only "
               "(chmod 600)");
  }
  return keys;
}

Status WriteKeyFile(const std::string& path, const KeyPair& keys,
                    bool with_secret) {
  if (!ValidZ85Key(keys.public_key) ||
      (with_secret && !ValidZ85Key(keys.secret_key))) {
    return Status(ErrorCode::kInvalidArgument, "not a z85 key pair");
  }
  const std::string bytes = KeyFileText(keys, with_secret);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        with_secret ? 0600 : 0644);
  if (fd < 0) {
    return Status(ErrorCode::kIoError, path + ": " + std::strerror(errno));
  }
  // The umask may have taken bits away, never added: set exactly.
  (void)::fchmod(fd, with_secret ? 0600 : 0644);
  const ssize_t n = ::write(fd, bytes.data(), bytes.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(bytes.size()) || !synced) {
    ::unlink(path.c_str());
    return Status(ErrorCode::kIoError, path + ": short write");
  }
  return Status::Ok();
}

Result<CurveKeys> LoadCurveKeys(const CurveOptions& options) {
  if (!CurveAvailable()) {
    return Status(ErrorCode::kUnavailable, "libzmq was built without CURVE");
  }
  if (options.broker_key_file.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "CURVE needs the broker's public key file");
  }
  Result<KeyPair> own = ReadKeyFile(options.key_file, /*need_secret=*/true);
  if (!own.ok()) return own.status();
  Result<KeyPair> broker =
      ReadKeyFile(options.broker_key_file, /*need_secret=*/false);
  if (!broker.ok()) return broker.status();
  return CurveKeys{std::move(*own), broker->public_key};
}

Status SetCurveClient(zmq::socket_t& socket, const CurveKeys& keys) {
  try {
    socket.set(zmq::sockopt::curve_serverkey, keys.broker_key);
    socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
    socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kInvalidArgument,
                  std::string("CURVE keys: ") + e.what());
  }
  return Status::Ok();
}

Status SetCurveServer(zmq::socket_t& socket, const KeyPair& keys) {
  try {
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    // Every handshake goes to the ZAP handler. libzmq 4.3 lets a CURVE
    // peer in when no handler is bound, so the caller binds it first.
    socket.set(zmq::sockopt::zap_domain, "rejoin");
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kInvalidArgument,
                  std::string("CURVE keys: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace rejoin::transport
