// Fuzz target: the broker's roster file (broker/src/roster.h). The input is
// the file's bytes. Properties beyond "no crash": a roster that decodes
// satisfies the format's rules (valid ids, at most kMaxRosterEpochs epochs),
// and it is canonical: encoding what was decoded gives back the same bytes,
// so two different files never mean the same roster.
#include <cstddef>
#include <string>

#include "fuzz_check.h"
#include "rejoin/proto/types.h"
#include "roster.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  using namespace rejoin::broker_internal;
  const std::string_view text = fuzz::AsText(data, size);
  Result<RosterContents> decoded = DecodeRoster(text);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == ErrorCode::kCorrupt);
    return 0;
  }
  FUZZ_CHECK(decoded->epochs.size() <= kMaxRosterEpochs);
  for (const std::string& id : decoded->servers) FUZZ_CHECK(IsValidId(id));
  const std::string encoded = EncodeRoster(*decoded);
  FUZZ_CHECK(encoded == text);
  Result<RosterContents> again = DecodeRoster(encoded);
  FUZZ_CHECK(again.ok() && *again == *decoded);
  return 0;
}
