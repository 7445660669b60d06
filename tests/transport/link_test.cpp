// transport::Link: the HELLO of a connection waits for its handshake, and a
// disconnect makes the next connection say HELLO again.
#include "rejoin/transport/link.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace rejoin::transport {
namespace {

using namespace std::chrono_literals;

Hello TestHello() {
  Hello h;
  h.role = Role::kClient;
  h.id = "link-test";
  h.incarnation = 1;
  h.journal_id = 7;
  return h;
}

// Reads monitor events until `want` arrives or two seconds pass.
bool AwaitEvent(Link& link, Link::Event want) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{link.monitor_handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 20ms);
    for (Link::Event e = link.ReadEvent(); e != Link::Event::kNone;
         e = link.ReadEvent()) {
      if (e == want) return true;
    }
  }
  return false;
}

// Binds a ROUTER on a free loopback port and returns its endpoint.
std::string BindRouter(zmq::socket_t& router) {
  router.bind("tcp://127.0.0.1:*");
  return router.get(zmq::sockopt::last_endpoint);
}

// Sends a HELLO until the socket takes it: the new connection's pipe can
// be attached a moment after its handshake event.
SendResult SendHelloSoon(Link& link) {
  SendResult r = SendResult::kWouldBlock;
  for (int i = 0; i < 100 && r == SendResult::kWouldBlock; ++i) {
    r = link.Send(Message(TestHello()));
    if (r == SendResult::kWouldBlock) std::this_thread::sleep_for(10ms);
  }
  return r;
}

// Binds `endpoint` again once the socket that held it has been closed
// (libzmq closes sockets in the background).
bool BindAgain(zmq::socket_t& socket, const std::string& endpoint) {
  for (int i = 0; i < 200; ++i) {
    try {
      socket.bind(endpoint);
      return true;
    } catch (const zmq::error_t& e) {
      if (e.num() != EADDRINUSE) throw;
      std::this_thread::sleep_for(10ms);
    }
  }
  return false;
}

TEST(Link, HelloWaitsForTheHandshake) {
  zmq::context_t context;
  // A port nobody listens on yet: reserve one, then close it.
  std::string endpoint;
  {
    zmq::socket_t probe(context, zmq::socket_type::router);
    probe.set(zmq::sockopt::linger, 0);
    endpoint = BindRouter(probe);
  }
  auto link = Link::Open(context, endpoint);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  Link& l = **link;
  EXPECT_EQ(l.Send(Message(TestHello())), SendResult::kWouldBlock);
  EXPECT_FALSE(l.hello_sent());

  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  ASSERT_TRUE(BindAgain(router, endpoint));
  ASSERT_TRUE(AwaitEvent(l, Link::Event::kConnected));
  EXPECT_EQ(SendHelloSoon(l), SendResult::kOk);
  EXPECT_TRUE(l.hello_sent());
  zmq::message_t id;
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 2000ms);
  ASSERT_TRUE(router.recv(id, zmq::recv_flags::dontwait));  // the HELLO
}

TEST(Link, ADisconnectAsksForANewHello) {
  zmq::context_t context;
  auto router =
      std::make_unique<zmq::socket_t>(context, zmq::socket_type::router);
  router->set(zmq::sockopt::linger, 0);
  const std::string endpoint = BindRouter(*router);
  auto link = Link::Open(context, endpoint);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  Link& l = **link;
  ASSERT_TRUE(AwaitEvent(l, Link::Event::kConnected));
  ASSERT_EQ(SendHelloSoon(l), SendResult::kOk);
  ASSERT_TRUE(l.hello_sent());

  router.reset();  // the peer goes away
  ASSERT_TRUE(AwaitEvent(l, Link::Event::kDisconnected));
  EXPECT_FALSE(l.connected());
  EXPECT_FALSE(l.hello_sent());
  // Until the next handshake a HELLO is not taken (it could only go into
  // the pipe of the dead connection).
  EXPECT_EQ(l.Send(Message(TestHello())), SendResult::kWouldBlock);
  EXPECT_FALSE(l.hello_sent());

  zmq::socket_t again(context, zmq::socket_type::router);
  again.set(zmq::sockopt::linger, 0);
  ASSERT_TRUE(BindAgain(again, endpoint));
  ASSERT_TRUE(AwaitEvent(l, Link::Event::kConnected));
  EXPECT_EQ(SendHelloSoon(l), SendResult::kOk);
  EXPECT_TRUE(l.hello_sent());
}

}  // namespace
}  // namespace rejoin::transport

namespace rejoin::transport {
namespace {

// libzmq reads a tcp port leniently (tcp://h:99999 binds another port):
// CheckEndpoint refuses what is not HOST:PORT with PORT in 1..65535.
TEST(CheckEndpoint, MalformedTcpEndpointsAreRefused) {
  for (const char* bad :
       {"tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536", "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:-1", "tcp://127.0.0.1:", "tcp://127.0.0.1",
        "tcp://:5555", "tcp://127.0.0.1:55x", "tcp://127.0.0.1:000005555",
        "tcp://::1:5555", "tcp://[::1:5555", "tcp://bad host:5555",
        "127.0.0.1:5555", "", "://x"}) {
    for (bool bind : {false, true}) {
      Status s = CheckEndpoint(bad, bind);
      EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(s.message().find("invalid endpoint"), std::string::npos)
          << s.message();
    }
  }
  EXPECT_FALSE(CheckEndpoint("tcp://127.0.0.1:*", /*bind=*/false).ok());
}

TEST(CheckEndpoint, WellFormedEndpointsPass) {
  for (const char* good :
       {"tcp://127.0.0.1:1", "tcp://127.0.0.1:65535", "tcp://localhost:5555",
        "tcp://[::1]:5555", "ipc:///tmp/x", "inproc://x"}) {
    EXPECT_TRUE(CheckEndpoint(good, false).ok()) << good;
    EXPECT_TRUE(CheckEndpoint(good, true).ok()) << good;
  }
  EXPECT_TRUE(CheckEndpoint("tcp://127.0.0.1:*", /*bind=*/true).ok());
  EXPECT_TRUE(CheckEndpoint("tcp://*:5555", /*bind=*/true).ok());
}

TEST(CheckEndpoint, LinkOpenRefusesAnOutOfRangePort) {
  zmq::context_t ctx;
  auto link = Link::Open(ctx, "tcp://127.0.0.1:99999");
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rejoin::transport
