// Descriptor exhaustion at a real rejoin-broker (FLOWS.md §10): with its
// descriptor limit low, idle connections use every descriptor; the broker
// logs the failed accepts instead of failing silently, and serves new
// clients again once idle connections are gone.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/client/client.h"
#include "support/files.h"

namespace rejoin::testing {
namespace {

using namespace std::chrono_literals;

TEST(BoundsEndToEnd, DescriptorExhaustionIsLoggedAndServiceResumes) {
  TempDir dir;
  const std::string endpoint = LoopbackEndpoint(FreePort());
  const std::string log = dir.Sub("broker.log");
  // The broker raises its soft limit to the hard one: set both.
  Process broker(
      "/bin/sh",
      {"-c", std::string("ulimit -n 48 && exec '") + REJOIN_BROKER_BIN +
                 "' --endpoint " + endpoint + " --log-level warn"},
      log);
  zmq::context_t ctx;
  std::vector<std::unique_ptr<zmq::socket_t>> idle;
  for (int i = 0; i < 80; ++i) {
    idle.push_back(
        std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer));
    idle.back()->set(zmq::sockopt::linger, 0);
    idle.back()->connect(endpoint);
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadFile(log).find("cannot accept a connection") !=
               std::string::npos;
      },
      10s))
      << ReadFile(log);
  idle.clear();

  ClientOptions o;
  o.endpoint = endpoint;
  o.session_id = "after";
  o.journal_dir = dir.Sub("after");
  o.default_deadline = 10s;
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  // Welcomed: the broker accepts and serves connections again.
  EXPECT_TRUE(WaitFor([&] { return (*client)->stats().welcomes > 0; }, 10s));
}

}  // namespace
}  // namespace rejoin::testing
