// Fuzz target: an endpoint's own key files (transport::ParseKeyFile, what
// ReadKeyFile reads for a client, a server, the broker and the tools). The
// input is a flags byte (bit 0: the file must hold a secret key, as for a
// key pair file) and the file's bytes. Properties beyond "no crash": every
// failure is kInvalidArgument naming the file; an accepted file gives a
// valid z85 public key, and with bit 0 a valid secret key it belongs to;
// parsing is deterministic; what is accepted, written back as WriteKeyFile
// writes it, reads back to the same keys.
#include <cstddef>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "rejoin/transport/curve.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  if (size == 0) return 0;
  const bool need_secret = (data[0] & 1u) != 0;
  const std::string_view text = fuzz::AsText(data + 1, size - 1);
  Result<transport::KeyPair> keys =
      transport::ParseKeyFile(text, "key.pair", need_secret);
  if (!keys.ok()) {
    FUZZ_CHECK(keys.status().code() == ErrorCode::kInvalidArgument);
    FUZZ_CHECK(keys.status().message().rfind("key.pair", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(transport::ValidZ85Key(keys->public_key));
  const bool with_secret = !keys->secret_key.empty();
  if (with_secret) FUZZ_CHECK(transport::ValidZ85Key(keys->secret_key));
  if (need_secret) {
    FUZZ_CHECK(with_secret);
    Result<std::string> derived = transport::PublicKeyOf(keys->secret_key);
    FUZZ_CHECK(derived.ok() && *derived == keys->public_key);
  }
  Result<transport::KeyPair> again =
      transport::ParseKeyFile(text, "key.pair", need_secret);
  FUZZ_CHECK(again.ok() && again->public_key == keys->public_key &&
             again->secret_key == keys->secret_key);
  const std::string written = transport::KeyFileText(*keys, with_secret);
  Result<transport::KeyPair> back =
      transport::ParseKeyFile(written, "key.pair", need_secret);
  FUZZ_CHECK(back.ok() && back->public_key == keys->public_key &&
             back->secret_key == keys->secret_key);
  return 0;
}
