// CurveZMQ keys (RFC 26) for rejoin's sockets: key files in z85 text, key
// pair generation, and the socket options that turn CURVE on for a broker's
// ROUTER (server side) or an endpoint's DEALER (client side).
//
// Key file format (one `name value` pair per line, `#` starts a comment):
//   public-key <40 z85 characters>
//   secret-key <40 z85 characters>     (key pair files only)
// A key pair file must not be readable by group or others: reading one
// that is fails with kInvalidArgument, as ssh does with private keys.
//
// No function throws; zmq errors become Status values.
#pragma once

#include <string>
#include <string_view>
#include <zmq.hpp>

#include "rejoin/proto/curve_options.h"
#include "rejoin/proto/status.h"

namespace rejoin::transport {

inline constexpr std::size_t kZ85KeyChars = 40;

struct KeyPair {
  std::string public_key;  // z85
  std::string secret_key;  // z85; empty when read from a public key file
};

// What an endpoint's socket needs: its own pair and the broker's public key.
struct CurveKeys {
  KeyPair own;
  std::string broker_key;  // z85
};

// True when libzmq was built with CURVE (libsodium).
bool CurveAvailable();
// A well-formed z85 public or secret key (40 characters that decode).
bool ValidZ85Key(std::string_view key);

// A new key pair. Errors: kUnavailable when libzmq has no CURVE.
Result<KeyPair> GenerateKeyPair();
// The public key that belongs to a z85 secret key.
Result<std::string> PublicKeyOf(const std::string& secret_key);

// The largest key file read: a pair with comments is well under 1 KiB.
inline constexpr long kMaxKeyFileBytes = 64 * 1024;

// Parses a key file's bytes (`name` only labels the errors): lines of
// `public-key KEY`, `secret-key KEY`, blank or `#` comments, each field at
// most once. With `need_secret` the secret key must be there and match the
// public key. Errors: kInvalidArgument naming the line.
Result<KeyPair> ParseKeyFile(std::string_view text, const std::string& name,
                             bool need_secret);
// The bytes WriteKeyFile writes for `keys`.
std::string KeyFileText(const KeyPair& keys, bool with_secret);

// Reads a key file. With `need_secret` it must hold a secret key and be
// private to its owner. Errors: kNotFound, kIoError, kInvalidArgument (a
// line that does not parse, a key that does not decode, a secret key that
// does not match the public key, a key pair file readable by others), each
// naming the file and line.
Result<KeyPair> ReadKeyFile(const std::string& path, bool need_secret);
// Writes `keys` to `path` with mode 0600 (a pair) or 0644 (public only);
// refuses to overwrite an existing file. Errors: kIoError, kInvalidArgument.
Status WriteKeyFile(const std::string& path, const KeyPair& keys,
                    bool with_secret);

// Reads an endpoint's key files. Errors as ReadKeyFile, and kUnavailable
// when libzmq has no CURVE.
Result<CurveKeys> LoadCurveKeys(const CurveOptions& options);

// Socket options: the endpoint's side (before connect), the broker's side
// (before bind; a ZAP handler must be bound in the same context).
// Errors: kInvalidArgument from libzmq.
Status SetCurveClient(zmq::socket_t& socket, const CurveKeys& keys);
Status SetCurveServer(zmq::socket_t& socket, const KeyPair& keys);

}  // namespace rejoin::transport
