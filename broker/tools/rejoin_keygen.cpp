// rejoin-keygen: writes a new CurveZMQ key pair for a broker, client or
// server process (docs/SECURITY.md): OUT (public and secret key, mode 0600)
// and OUT.pub (the public key alone, to hand to whoever needs it). With
// --principal it also prints the keys file line that lets the key in.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "rejoin/transport/curve.h"

int main(int argc, char** argv) {
  std::string out;
  std::string principal;
  CLI::App app{
      "Writes a new CURVE key pair: OUT (mode 0600) and OUT.pub. Existing "
      "files are never overwritten.",
      "rejoin-keygen"};
  app.set_version_flag("--version",
                       std::string("rejoin-keygen ") + REJOIN_VERSION);
  app.add_option("out", out, "the key pair file to write")->required();
  app.add_option("--principal", principal,
                 "print the keys file line for this principal name");
  CLI11_PARSE(app, argc, argv);

  auto keys = rejoin::transport::GenerateKeyPair();
  if (!keys.ok()) {
    std::fprintf(stderr, "rejoin-keygen: %s\n",
                 keys.status().ToString().c_str());
    return 1;
  }
  if (auto s = rejoin::transport::WriteKeyFile(out, *keys, true); !s.ok()) {
    std::fprintf(stderr, "rejoin-keygen: %s\n", s.ToString().c_str());
    return 1;
  }
  if (auto s = rejoin::transport::WriteKeyFile(out + ".pub", *keys, false);
      !s.ok()) {
    std::fprintf(stderr, "rejoin-keygen: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("public key %s\n", keys->public_key.c_str());
  if (!principal.empty()) {
    std::printf("keys file line: principal %s key %s\n", principal.c_str(),
                keys->public_key.c_str());
  }
  return 0;
}
