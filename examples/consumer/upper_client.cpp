// upper_client: makes N durable calls to the "upper" service through an
// installed rejoin and checks every answer. Usage:
//   upper_client ENDPOINT JOURNAL_DIR N
// Prints one summary line; exit status 0 when all N answers are right.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "rejoin/client/client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: upper_client ENDPOINT JOURNAL_DIR N\n");
    return 2;
  }
  rejoin::ClientOptions options;
  options.endpoint = argv[1];
  options.journal_dir = argv[2];
  options.session_id = "upper-client";
  options.durability = rejoin::Durability::kProcess;
  const long n = std::strtol(argv[3], nullptr, 10);

  auto client = rejoin::Client::Open(options);
  if (!client.ok()) {
    std::fprintf(stderr, "upper_client: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  long right = 0;
  for (long i = 0; i < n; ++i) {
    const std::string payload = "call " + std::to_string(i) + " of rejoin";
    std::string expected = payload;
    for (char& c : expected) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    auto reply = (*client)->Call("upper", payload, std::chrono::seconds(10));
    if (!reply.ok()) {
      std::fprintf(stderr, "upper_client: call %ld: %s\n", i,
                   reply.status().ToString().c_str());
      continue;
    }
    if (reply->status == rejoin::ErrorCode::kOk && reply->payload == expected) {
      ++right;
    }
  }
  std::printf("upper_client: %ld calls, %ld answered right\n", n, right);
  return right == n ? 0 : 1;
}
