// Fuzz target: the broker's keys file (broker/src/access.h), which names the
// CURVE keys let in, their principals and what each may call and serve. The
// input is the file's bytes. Properties beyond "no crash": every failure is
// kInvalidArgument naming the file; parsing is deterministic; an accepted
// policy answers PrincipalOf, MayCall and MayServe for names and services
// taken from the input itself, and a key it maps to a principal is a valid
// z85 key.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "access.h"
#include "fuzz_check.h"
#include "rejoin/transport/curve.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  using broker_internal::AccessPolicy;
  const std::string_view text = fuzz::AsText(data, size);
  Result<AccessPolicy> policy = AccessPolicy::Parse(text, "keys");
  if (!policy.ok()) {
    FUZZ_CHECK(policy.status().code() == ErrorCode::kInvalidArgument);
    FUZZ_CHECK(policy.status().message().find("keys") != std::string::npos);
    return 0;
  }
  Result<AccessPolicy> again = AccessPolicy::Parse(text, "keys");
  FUZZ_CHECK(again.ok() && again->keys() == policy->keys());
  // Every whitespace-separated word of the input as a key, a principal and
  // a service.
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word.push_back(c);
    }
  }
  if (!word.empty()) words.push_back(word);
  std::size_t principals = 0;
  for (const std::string& w : words) {
    if (const std::string* p = policy->PrincipalOf(w)) {
      FUZZ_CHECK(transport::ValidZ85Key(w));
      FUZZ_CHECK(again->PrincipalOf(w) != nullptr &&
                 *again->PrincipalOf(w) == *p);
      ++principals;
    }
    for (const std::string& service : {w, std::string("svc")}) {
      FUZZ_CHECK(policy->MayCall(w, service) == again->MayCall(w, service));
      FUZZ_CHECK(policy->MayServe(w, service) == again->MayServe(w, service));
    }
  }
  FUZZ_CHECK(policy->keys() <= words.size());
  return 0;
}
