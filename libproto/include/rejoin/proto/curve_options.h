// CurveOptions: the key files an endpoint (client or server) uses to speak
// CurveZMQ (RFC 26) to a broker that requires it. Plain data; the files are
// read when the endpoint opens its connection (rejoin/transport/curve.h).
//
// Key files are written by `rejoin-keygen` (docs/SECURITY.md): a key pair
// file holds `public-key` and `secret-key` lines in z85 and must be
// readable by its owner only; a public key file holds `public-key` alone.
#pragma once

#include <string>

namespace rejoin {

struct CurveOptions {
  // This process's key pair. Empty: no CURVE (plain TCP), as a broker
  // without a keys file expects.
  std::string key_file;
  // The broker's public key (a public key file, or the broker's key pair
  // file). Required with key_file.
  std::string broker_key_file;

  bool enabled() const { return !key_file.empty(); }
};

}  // namespace rejoin
