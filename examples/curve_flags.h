// The CURVE flags every example takes: --curve-key and --broker-key, for a
// broker that runs with CurveZMQ and a keys file (docs/SECURITY.md).
#pragma once

#include <CLI/CLI.hpp>

#include "rejoin/proto/curve_options.h"

namespace rejoin::examples {

// The process's key pair and the broker's public key (rejoin-keygen).
inline void AddCurveFlags(CLI::App& app, CurveOptions& curve) {
  app.add_option("--curve-key", curve.key_file,
                 "this process's CURVE key pair file (rejoin-keygen)");
  app.add_option("--broker-key", curve.broker_key_file,
                 "the broker's public key file (with --curve-key)");
}

}  // namespace rejoin::examples
