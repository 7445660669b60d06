// Liveness belongs to the connection (PROTOCOL.md §1.4, FLOWS.md §1): a
// healthy server whose handler runs for a long time answers the broker's
// probes instead of sending heartbeats, and must never be declared dead for
// it. A real server process with a slow handler, an in-process broker over
// loopback with the default heartbeat (200 ms) and probe delay (50 ms).
// The handler takes 3 s by default; the `soak` label runs it with 60 s
// (REJOIN_LIVENESS_HANDLER_S).
#include <cstdlib>
#include <string>

#include "e2e/e2e_fixture.h"

namespace rejoin::testing {
namespace {

int HandlerSeconds() {
  const char* s = std::getenv("REJOIN_LIVENESS_HANDLER_S");
  const int n = s != nullptr ? std::atoi(s) : 0;
  return n > 0 ? n : 3;
}

class Liveness : public EndToEnd {};

TEST_F(Liveness, SlowHandlerRunsOnceAndItsServerIsNeverDeclaredDead) {
  BrokerOptions o;  // default heartbeat and probe delay
  o.grace = std::chrono::milliseconds(0);
  StartBroker(o);
  const int seconds = HandlerSeconds();
  StartServer("slow", {"--delay-ms", std::to_string(seconds * 1000)});
  auto options = ClientOptionsFor("waiter");
  options.heartbeat = std::chrono::milliseconds(200);
  options.default_deadline = std::chrono::seconds(seconds + 30);
  auto client = Client::Open(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto r = (*client)->Call("echo", "slow-one");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("slow-one", r->seq));
  EXPECT_EQ(Executions("waiter", r->seq), 1);
  const BrokerStats s = BrokerCounters();
  EXPECT_EQ(s.servers_silent, 0u);
  EXPECT_EQ(s.moved, 0u);
  EXPECT_EQ(s.answered_in_doubt, 0u);
  // The broker did look at the operation while it ran.
  EXPECT_GT(s.probes, 0u);
}

}  // namespace
}  // namespace rejoin::testing
