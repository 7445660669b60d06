// Whole-system behaviour beyond single table rows: deadlines and collecting
// outcomes after a restart, a server that never returns, a broker killed with
// operations in flight at several servers, and hostile input next to a
// normal session; payloads on both sides of the pack-frame limit; fencing,
// hung servers and rejoin-call.
#include <signal.h>

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "e2e/e2e_fixture.h"
#include "rejoin/proto/codec.h"
#include "rejoin/transport/wire.h"
#include "support/files.h"
#include "support/raw_endpoint.h"

namespace rejoin::testing {
namespace {

using Where = FaultPoint::Where;
constexpr auto kWait = std::chrono::seconds(20);

class SystemEndToEnd : public EndToEnd {
 protected:
  Process StartBrokerProcess() {
    return Process(
        REJOIN_BROKER_BIN,
        {"--endpoint", endpoint_, "--heartbeat-ms", "50", "--probe-ms", "20",
         "--grace-ms", "300", "--lease-ms", "1000", "--log-level", "warn"},
        dir_.Sub("broker.log"));
  }
};

TEST_F(SystemEndToEnd, ClientGivesUpOnDeadlineAndCollectsAfterRestart) {
  StartBroker();
  StartServer("slow", {"--delay-ms", "600"});
  Seq seq = 0;
  {
    auto client = OpenClient("patient");
    auto r = client->Call("echo", "later", std::chrono::milliseconds(100));
    ASSERT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded);
    auto ops = client->ListOperations();
    ASSERT_EQ(ops.size(), 1u);
    seq = ops[0].seq;
  }  // the client exits while the server is still executing
  ASSERT_TRUE(WaitFor([&] { return Executions("patient", seq) == 1; }, kWait));
  auto client = OpenClient("patient");
  auto ops = client->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].seq, seq);
  auto r = client->Collect(seq, kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("later", seq));
  EXPECT_EQ(Executions("patient", seq), 1);
}

// Payloads on both sides of the pack-frame limit (PROTOCOL.md §2.2) in the
// same batches: small ones packed, large ones in frames of their own, and
// every answer intact and in its place.
TEST_F(SystemEndToEnd, SmallAndLargePayloadsShareBatchesIntact) {
  StartBroker();
  StartServer("mixed");
  WaitForServers(1);
  auto client = OpenClient("mixer");
  const std::vector<std::string> payloads = {
      "small",
      std::string(transport::kPackMaxPayload - 16, 'a'),
      std::string(transport::kPackMaxPayload + 1, 'b'),
      "",
      std::string(1 << 20, 'c'),
      "small again",
      std::string(3 * transport::kPackMaxPayload, 'd'),
  };
  std::mutex mu;
  std::map<Seq, Result<Reply>> answers;
  std::vector<std::pair<Seq, std::string>> sent;
  for (int round = 0; round < 3; ++round) {
    for (const std::string& p : payloads) {
      auto seq = client->CallAsync("echo", p, [&](const Result<Reply>& r) {
        std::lock_guard lock(mu);
        answers.emplace(r.ok() ? r->seq : 0, r);
      });
      ASSERT_TRUE(seq.ok()) << seq.status().ToString();
      sent.emplace_back(*seq, p);
    }
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return answers.size() == sent.size();
      },
      kWait));
  std::lock_guard lock(mu);
  for (const auto& [seq, p] : sent) {
    auto it = answers.find(seq);
    ASSERT_NE(it, answers.end()) << "seq " << seq;
    ASSERT_TRUE(it->second.ok()) << it->second.status().ToString();
    EXPECT_EQ(it->second->payload, Expected(p, seq)) << "seq " << seq;
    EXPECT_EQ(Executions("mixer", seq), 1);
  }
}

// Blocking calls from several application threads, beside a window of
// callback-driven calls on the same session: calls made while the I/O thread
// sleeps are journaled and sent on the caller's thread, the others on the
// I/O thread's turn, and answers arriving while a caller sends must still
// reach the sleeping loop. Every call is answered once and run once.
TEST_F(SystemEndToEnd,
       CallersAndTheIoThreadShareTheSocketWithoutLosingAnswers) {
  StartBroker();
  StartServer("shared");
  WaitForServers(1);
  auto client = OpenClient("callers");
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 150;
  constexpr int kChained = 300;
  std::mutex mu;
  std::vector<std::pair<Seq, std::string>> answered;
  std::vector<std::string> failures;
  // Notes the outcome of the call that sent payload `p`.
  auto record = [&](const std::string& p, const Result<Reply>& r) {
    std::lock_guard lock(mu);
    if (!r.ok()) {
      failures.push_back(r.status().ToString());
      return;
    }
    answered.emplace_back(r->seq, r->payload);
    if (r->payload != Expected(p, r->seq)) failures.push_back(p);
  };

  // The chain: each answer's callback makes the next call on the I/O
  // thread, which queues it for the turn.
  std::atomic<int> chained{0};
  std::function<void()> next_in_chain = [&] {
    const std::string p = "chain-" + std::to_string(chained.load());
    auto seq = client->CallAsync("echo", p, [&, p](const Result<Reply>& r) {
      record(p, r);
      if (chained.fetch_add(1) + 1 < kChained) next_in_chain();
    });
    if (!seq.ok()) {
      std::lock_guard lock(mu);
      failures.push_back(seq.status().ToString());
    }
  };
  next_in_chain();

  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        const std::string p =
            "thread-" + std::to_string(t) + "-" + std::to_string(i);
        record(p, client->Call("echo", p));
      }
    });
  }
  for (std::thread& t : callers) t.join();
  ASSERT_TRUE(WaitFor([&] { return chained.load() >= kChained; }, kWait));

  std::lock_guard lock(mu);
  EXPECT_TRUE(failures.empty()) << failures.front();
  ASSERT_EQ(answered.size(),
            static_cast<std::size_t>(kThreads * kCallsPerThread + kChained));
  std::set<Seq> seqs;
  for (const auto& [seq, payload] : answered) {
    EXPECT_TRUE(seqs.insert(seq).second) << "seq " << seq << " answered twice";
    EXPECT_EQ(Executions("callers", seq), 1) << "seq " << seq;
  }
  const ClientStats stats = client->stats();
  EXPECT_EQ(stats.completed, answered.size());
  EXPECT_LE(stats.calls_sent_by_caller,
            static_cast<std::uint64_t>(kThreads * kCallsPerThread));
}

TEST_F(SystemEndToEnd, ServerThatNeverReturnsHasIdempotentWorkMoved) {
  StartBroker();
  Process& a = StartServer("a", {"--idempotent", "--delay-ms", "5000"});
  auto client = OpenClient("mover");
  auto future = client->CallFuture("echo", "move-me", kWait);
  ASSERT_TRUE(
      WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
  a.Kill9();
  StartServer("b", {"--idempotent"});
  auto r = future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("move-me", r->seq));
  EXPECT_GE(BrokerCounters().moved, 1u);
}

TEST_F(SystemEndToEnd, ServerThatNeverReturnsLeavesUnsafeWorkInDoubt) {
  StartBroker();
  Process& a = StartServer("a", {"--delay-ms", "5000"});
  auto client = OpenClient("stuck");
  auto future = client->CallFuture("echo", "unsafe", kWait);
  ASSERT_TRUE(
      WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
  a.Kill9();
  StartServer("b");
  auto r = future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kInDoubt);
  // Never run a second time on the other server.
  EXPECT_EQ(Executions("stuck", r->seq), 1);
}

TEST_F(SystemEndToEnd, BrokerKilledWithWorkAtSeveralServersRunsNothingTwice) {
  Process broker = StartBrokerProcess();
  StartServer("a", {"--delay-ms", "200", "--concurrency", "4"});
  StartServer("b", {"--delay-ms", "200", "--concurrency", "4"});
  auto client = OpenClient("busy");
  std::vector<std::future<Result<Reply>>> calls;
  for (int i = 0; i < 16; ++i) {
    calls.push_back(client->CallFuture("echo", "w" + std::to_string(i), kWait));
  }
  // Both servers are executing when the broker dies.
  ASSERT_TRUE(
      WaitFor([&] { return ReadExecutions(Ledger()).size() >= 4; }, kWait));
  broker.Kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  broker = StartBrokerProcess();
  for (std::size_t i = 0; i < calls.size(); ++i) {
    auto r = calls[i].get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, ErrorCode::kOk);
    EXPECT_EQ(r->payload, Expected("w" + std::to_string(i), r->seq));
  }
  for (const auto& [key, count] : ReadExecutions(Ledger())) {
    EXPECT_EQ(count, 1) << key.first << " " << key.second;
  }
  EXPECT_EQ(ReadExecutions(Ledger()).size(), 16u);
}

// Frames a hostile or broken peer might send.
std::vector<std::vector<std::string>> HostileFrames() {
  std::string request = EncodeHeader(Request{"mallory", 1, "echo", 1, 0, 0});
  std::string wrong_version = request;
  wrong_version[2] = 9;
  std::string unknown_type = request;
  unknown_type[3] = static_cast<char>(77);
  std::string truncated = request.substr(0, request.size() - 3);
  std::string trailing = request + "xx";
  // Pack frames (PROTOCOL.md §2.2): 4-byte little-endian sizes.
  auto sized = [](const std::string& bytes) {
    std::string out(4, '\0');
    out[0] = static_cast<char>(bytes.size() & 0xffu);
    out[1] = static_cast<char>((bytes.size() >> 8) & 0xffu);
    return out + bytes;
  };
  const std::string pack("RJ\x01\x00", 4);
  return {
      {""},
      {"RJ"},
      {"garbage that is not rejoin at all"},
      {wrong_version, ""},
      {unknown_type, ""},
      {truncated, ""},
      {trailing, ""},
      {request},                     // REQUEST without its payload frame
      {request, "", "extra frame"},  // one frame too many
      {request, "payload"},          // REQUEST before HELLO
      {EncodeHeader(Heartbeat{1})},  // HEARTBEAT before HELLO
      {EncodeHeader(Welcome{1, 1, 1, 1, 0, "s"})},  // broker-only message
      // Batches: a bad header in the middle drops the rest of its batch; a
      // REQUEST at the end of one lacks its payload.
      {EncodeHeader(Heartbeat{1}), "not a header", request, "payload"},
      {request, "payload", request, "payload", request},
      // Pack frames: an entry running past its frame, a REQUEST without its
      // payload entry, a bad header, a pack inside a pack.
      {pack + sized(request) + sized("payload") + std::string("\xff\xff", 2)},
      {pack + sized(request)},
      {pack + sized("not a header") + sized(request) + sized("payload")},
      {pack + sized(pack + sized(request) + sized("payload"))},
  };
}

TEST_F(SystemEndToEnd, HostileInputIsAnsweredOrDroppedWhileSessionsRun) {
  BrokerOptions o = TestBrokerOptions();
  o.max_message_bytes = 64 * 1024;
  StartBroker(o);
  StartServer("s1");
  auto client = OpenClient("normal");

  std::atomic<bool> stop{false};
  std::thread attacker([&] {
    zmq::context_t ctx;
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(endpoint_);
    const auto frames = HostileFrames();
    std::string oversized(200 * 1024, 'x');
    Hello hello{Role::kClient, "mallory", 1, 1, 0, {}};
    int round = 0;
    while (!stop.load()) {
      for (const auto& msg : frames) {
        for (std::size_t i = 0; i < msg.size(); ++i) {
          zmq::message_t m(msg[i].data(), msg[i].size());
          raw.send(m, i + 1 < msg.size() ? zmq::send_flags::sndmore
                                         : zmq::send_flags::none);
        }
      }
      // A real session that then sends an oversized payload and an unknown
      // service: both answered, neither disturbs anyone else.
      if (round++ == 0) {
        std::string h = EncodeHeader(hello);
        raw.send(zmq::buffer(h), zmq::send_flags::none);
        std::string big = EncodeHeader(Request{"mallory", 5, "echo", 1, 0, 0});
        raw.send(zmq::buffer(big), zmq::send_flags::sndmore);
        raw.send(zmq::buffer(oversized), zmq::send_flags::none);
        std::string nosvc =
            EncodeHeader(Request{"mallory", 6, "no.such.service", 1, 0, 0});
        raw.send(zmq::buffer(nosvc), zmq::send_flags::sndmore);
        raw.send(zmq::buffer(std::string("x")), zmq::send_flags::none);
      }
      // Drain whatever the broker answers.
      zmq::message_t in;
      while (raw.recv(in, zmq::recv_flags::dontwait)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  for (int i = 0; i < 200; ++i) {
    const std::string payload = "n" + std::to_string(i);
    auto r = client->Call("echo", payload, kWait);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->payload, Expected(payload, r->seq));
  }
  stop.store(true);
  attacker.join();
  // The unknown service is answered once a lease passes without a server.
  EXPECT_TRUE(
      WaitFor([&] { return BrokerCounters().answered_errors >= 2; }, kWait));
  const BrokerStats s = BrokerCounters();
  EXPECT_GT(s.malformed, 0u);
  EXPECT_GT(s.bad_version, 0u);
  EXPECT_GT(s.unknown_type, 0u);
  EXPECT_GT(s.unknown_peer, 0u);
  EXPECT_GE(s.too_large, 1u);
  EXPECT_GE(s.answered_errors, 2u);  // too large + unknown service
  for (const auto& [key, count] : ReadExecutions(Ledger())) {
    EXPECT_EQ(count, 1);
  }
}

TEST_F(SystemEndToEnd, RejoinCallWithoutBrokerSaysNoBrokerAnswered) {
  // No broker on endpoint_.
  const std::string err = dir_.Sub("call.err");
  Process call(REJOIN_CALL_BIN,
               {"--endpoint", endpoint_, "--service", "echo", "--deadline-ms",
                "300", "hi"},
               err);
  EXPECT_EQ(call.Wait(kWait), 1);
  EXPECT_NE(ReadFile(err).find("no broker answered at " + endpoint_),
            std::string::npos)
      << ReadFile(err);
}

}  // namespace
}  // namespace rejoin::testing

namespace rejoin::testing {
namespace {

ErrorCode CodeOf(const Message& m) {
  if (const auto* e = std::get_if<Error>(&m)) return e->code;
  return std::holds_alternative<Welcome>(m) ? ErrorCode::kOk
                                            : ErrorCode::kInternal;
}

TEST_F(SystemEndToEnd, OlderIncarnationIsFencedAndSecondLiveProcessRefused) {
  StartBroker();
  zmq::context_t ctx;
  RawEndpoint current(ctx, endpoint_);
  current.Send(Hello{Role::kClient, "fence-me", 5, 77, 0, {}});
  EXPECT_EQ(CodeOf(current.Next()), ErrorCode::kOk);

  RawEndpoint stale(ctx, endpoint_);
  stale.Send(Hello{Role::kClient, "fence-me", 4, 77, 0, {}});
  EXPECT_EQ(CodeOf(stale.Next()), ErrorCode::kFenced);

  RawEndpoint newer(ctx, endpoint_);
  newer.Send(Hello{Role::kClient, "fence-me", 6, 77, 0, {}});
  EXPECT_EQ(CodeOf(newer.Next()), ErrorCode::kDuplicateIdentity);

  // Once the old process's connection is gone, the newer one wins.
  current.Close();
  ASSERT_TRUE(WaitFor(
      [&] {
        newer.Send(Hello{Role::kClient, "fence-me", 6, 77, 0, {}});
        return CodeOf(newer.Next()) == ErrorCode::kOk;
      },
      kWait));
  EXPECT_GE(BrokerCounters().fenced, 1u);
  EXPECT_GE(BrokerCounters().duplicate_identity, 1u);
}

// The broker's heartbeat outlasts the hand-made client's use of it (it sends
// none of its own).
BrokerOptions SlowHeartbeatBroker() {
  BrokerOptions o;
  o.heartbeat = std::chrono::milliseconds(1000);
  o.probe = std::chrono::milliseconds(20);
  o.grace = std::chrono::milliseconds(200);
  o.lease = std::chrono::milliseconds(600);
  return o;
}

Request RequestFor(const SessionId& session, Seq seq, Seq watermark,
                   std::uint8_t flags = 0) {
  Request r;
  r.session = session;
  r.seq = seq;
  r.service = "echo";
  r.completed_watermark = watermark;
  r.flags = flags;
  return r;
}

// The next RESPONSE, skipping anything else the broker sends meanwhile.
std::optional<Response> NextResponse(RawEndpoint& client) {
  for (int i = 0; i < 16; ++i) {
    Message m = client.Next(kWait);
    if (auto* r = std::get_if<Response>(&m)) return *r;
    if (auto* g = std::get_if<Goodbye>(&m); g && g->reason == "timeout") {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// PROTOCOL.md §5.2: a seq released above the watermark (a tombstone) reads
// as "none" in a server's vector, so a client whose journal went back in
// time is asked to resend it; the resend reaches the server, which answers
// it in_doubt. The call never hangs, and nothing runs twice.
TEST_F(SystemEndToEnd, TombstonedSeqAboveTheWatermarkIsAnsweredNotLeftHanging) {
  StartBroker(SlowHeartbeatBroker());
  StartServer("s1");
  ASSERT_TRUE(WaitFor([&] { return BrokerCounters().servers == 1; }, kWait));
  zmq::context_t ctx;
  RawEndpoint client(ctx, endpoint_);
  client.Send(Hello{Role::kClient, "rolled", 1, 42, 0, {}});
  ASSERT_EQ(CodeOf(client.Next()), ErrorCode::kOk);

  // Seq 100 stays pending; 101 completes and is acknowledged by name.
  client.Send(RequestFor("rolled", 101, 100), "b");
  auto first = NextResponse(client);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->seq, 101u);
  EXPECT_EQ(client.payload(), Expected("b", 101));
  client.Send(Ack{"rolled", 100, {101}});

  // The journal goes back to before 101 completed: both pending again.
  StateExchange x;
  x.role = Role::kClient;
  ClientVector v;
  v.session = "rolled";
  v.incarnation = 1;
  v.journal_id = 42;
  v.next_seq = 102;
  v.completed_watermark = 100;
  v.pending = {100, 101};
  x.clients = {v};
  x.last = true;
  client.Send(x);
  std::set<Seq> asked;
  for (int i = 0; i < 16 && asked.size() < 2; ++i) {
    Message m = client.Next(kWait);
    if (auto* r = std::get_if<Recover>(&m)) {
      for (const RecoverSession& rs : r->sessions) {
        for (const OpDecision& d : rs.ops) {
          if (d.action == Action::kResendRequest) asked.insert(d.seq);
        }
      }
    }
  }
  ASSERT_EQ(asked, (std::set<Seq>{100, 101}));

  client.Send(RequestFor("rolled", 100, 100, kRequestResend), "a");
  client.Send(RequestFor("rolled", 101, 100, kRequestResend), "b");
  std::map<Seq, ErrorCode> answers;
  for (int i = 0; i < 2; ++i) {
    auto r = NextResponse(client);
    ASSERT_TRUE(r) << "a resent call was left without an answer";
    answers[r->seq] = r->status;
  }
  EXPECT_EQ(answers[100], ErrorCode::kOk);
  EXPECT_EQ(answers[101], ErrorCode::kInDoubt);
  EXPECT_EQ(Executions("rolled", 100), 1);
  EXPECT_EQ(Executions("rolled", 101), 1);
}

// PROTOCOL.md §6.3: a session whose client never returns is released at
// the server after its session expiry; a client that comes back after that
// is answered in_doubt from the release, and nothing runs again.
TEST_F(SystemEndToEnd, ServerReleasesASessionIdleForItsExpiry) {
  StartBroker(SlowHeartbeatBroker());
  StartServer("s1", {"--session-expiry-ms", "300"});
  ASSERT_TRUE(WaitFor([&] { return BrokerCounters().servers == 1; }, kWait));
  zmq::context_t ctx;
  {
    RawEndpoint client(ctx, endpoint_);
    client.Send(Hello{Role::kClient, "gone", 1, 42, 0, {}});
    ASSERT_EQ(CodeOf(client.Next()), ErrorCode::kOk);
    client.Send(RequestFor("gone", 100, 100), "x");
    auto r = NextResponse(client);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, ErrorCode::kOk);
    // Never acknowledged: the server keeps the response for its client.
  }
  const std::string log = dir_.Sub("server-s1.log");
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFile(log).find("session expiry") != std::string::npos; },
      kWait))
      << ReadFile(log);

  // A broker with no memory of the session, so the resend reaches the
  // server instead of the old broker's retained answer.
  StopBroker();
  StartBroker(SlowHeartbeatBroker());
  ASSERT_TRUE(WaitFor([&] { return BrokerCounters().servers == 1; }, kWait));
  RawEndpoint back(ctx, endpoint_);
  back.Send(Hello{Role::kClient, "gone", 2, 42, 0, {}});
  ASSERT_EQ(CodeOf(back.Next()), ErrorCode::kOk);
  back.Send(RequestFor("gone", 100, 100, kRequestResend), "x");
  auto late = NextResponse(back);
  ASSERT_TRUE(late) << "the returning client was left without an answer";
  EXPECT_EQ(late->status, ErrorCode::kInDoubt);
  EXPECT_EQ(Executions("gone", 100), 1);
}

TEST_F(SystemEndToEnd, SecondClientOnALiveSessionWaitsForTheFirstToLeave) {
  StartBroker();
  StartServer("s1");
  auto first = OpenClient("shared");
  ASSERT_TRUE(first->Call("echo", "one", kWait).ok());
  ClientOptions o = ClientOptionsFor("shared");
  o.journal_dir = dir_.Sub("another-journal");
  auto second = Client::Open(o);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto refused = (*second)->Call("echo", "two", std::chrono::milliseconds(400));
  EXPECT_EQ(refused.status().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(BrokerCounters().duplicate_identity, 1u);
  first.reset();  // says GOODBYE
  auto ops = (*second)->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  auto r = (*second)->Collect(ops[0].seq, kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("two", ops[0].seq));
}

TEST_F(SystemEndToEnd, HungServerIsDeclaredDeadAndReturnsWhenResumed) {
  StartBroker();
  Process& server = StartServer("s1");
  auto client = OpenClient("watcher");
  ASSERT_TRUE(client->Call("echo", "before", kWait).ok());
  ASSERT_EQ(BrokerCounters().servers, 1u);
  // SIGSTOP keeps the TCP connection open: only heartbeats can tell.
  ::kill(server.pid(), SIGSTOP);
  EXPECT_TRUE(WaitFor([&] { return BrokerCounters().servers == 0; }, kWait));
  ::kill(server.pid(), SIGCONT);
  EXPECT_TRUE(WaitFor([&] { return BrokerCounters().servers == 1; }, kWait));
  auto r = client->Call("echo", "after", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("after", r->seq));
}

TEST_F(SystemEndToEnd, RejoinCallPrintsTheResponseOrAClearError) {
  StartBroker();
  StartServer("s1");
  const std::string out = dir_.Sub("call.out");
  Process ok(REJOIN_CALL_BIN,
             {"--endpoint", endpoint_, "--service", "echo", "hi"}, out);
  EXPECT_EQ(ok.Wait(kWait), 0);
  EXPECT_NE(ReadFile(out).find("ok:hi@"), std::string::npos) << ReadFile(out);

  const std::string err = dir_.Sub("call.err");
  Process bad(REJOIN_CALL_BIN,
              {"--endpoint", endpoint_, "--service", "no.such", "hi"}, err);
  EXPECT_NE(bad.Wait(kWait), 0);
  EXPECT_NE(ReadFile(err).find("unknown_service"), std::string::npos)
      << ReadFile(err);
}

}  // namespace
}  // namespace rejoin::testing
