// Descriptor exhaustion at a real rejoin-broker (FLOWS.md §10): with its
// descriptor limit low, idle connections use every descriptor; the broker
// logs the failed accepts instead of failing silently, sheds the connections
// that stay silent, and serves new clients while the flood goes on.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
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

  // The idle connections stay (and come back when shed: ZeroMQ reconnects
  // them); a new client is still welcomed and served.
  ClientOptions o;
  o.endpoint = endpoint;
  o.session_id = "during";
  o.journal_dir = dir.Sub("during");
  o.default_deadline = 10s;
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE(WaitFor([&] { return (*client)->stats().welcomes > 0; }, 10s))
      << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("silent for"), std::string::npos)
      << ReadFile(log);
  // Welcomed once, and kept: a live client is never shed.
  const auto welcomes = (*client)->stats().welcomes;
  std::this_thread::sleep_for(2s);
  EXPECT_EQ((*client)->stats().welcomes, welcomes);
  idle.clear();
}

}  // namespace
}  // namespace rejoin::testing
