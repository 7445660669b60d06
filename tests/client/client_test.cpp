// libclient against a scripted broker: what the client sends and when
// (FLOWS.md §2-§6, client side), what the application sees, and what the
// journal holds across a restart of the client.
#include "rejoin/client/client.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "support/fake_broker.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using testing::FakeBroker;
using testing::kFirstEpoch;
using testing::kSecondEpoch;
using testing::TempDir;
using testing::TestWelcome;

ClientOptions MemoryOptions(const FakeBroker& broker,
                            std::string session = "test-session") {
  ClientOptions o;
  o.endpoint = broker.endpoint();
  o.session_id = std::move(session);
  o.durability = Durability::kMemory;
  o.default_deadline = 5s;
  o.resend_delay = 5s;  // tests that want resends lower it
  return o;
}

ClientOptions DurableOptions(const FakeBroker& broker, const TempDir& dir) {
  ClientOptions o = MemoryOptions(broker);
  o.durability = Durability::kProcess;
  o.journal_dir = dir.path();
  return o;
}

std::unique_ptr<Client> OpenClient(const ClientOptions& o) {
  auto c = Client::Open(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Collects every outcome a callback receives.
class Outcomes {
 public:
  Client::Callback Callback() {
    return [this](const Result<Reply>& r) {
      std::lock_guard lock(mutex_);
      results_.push_back(r);
    };
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return results_.size();
  }
  Result<Reply> at(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return results_.at(i);
  }
  bool WaitForCount(std::size_t n) {
    return Eventually([&] { return size() >= n; });
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Result<Reply>> results_;
};

// Records recovery events.
class Events {
 public:
  std::function<void(const RecoveryEvent&)> Callback() {
    return [this](const RecoveryEvent& e) {
      std::lock_guard lock(mutex_);
      kinds_.push_back(e.kind);
    };
  }
  bool Saw(RecoveryEventKind kind) const {
    std::lock_guard lock(mutex_);
    return std::find(kinds_.begin(), kinds_.end(), kind) != kinds_.end();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<RecoveryEventKind> kinds_;
};

TEST(ClientOpen, RejectsInvalidOptions) {
  FakeBroker broker;
  ClientOptions o = MemoryOptions(broker, "");
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
  o = MemoryOptions(broker, "has space");
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
  o = MemoryOptions(broker);
  o.durability = Durability::kProcess;  // no journal_dir
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
  o = MemoryOptions(broker);
  o.max_outstanding = 0;
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
  o = MemoryOptions(broker);
  o.endpoint = "nonsense://x";
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ClientHello, CarriesSessionIncarnationAndJournalId) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  auto hello = broker.Expect<Hello>();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->message.role, Role::kClient);
  EXPECT_EQ(hello->message.id, "test-session");
  EXPECT_EQ(hello->message.incarnation, client->incarnation());
  EXPECT_NE(hello->message.journal_id, 0u);
  EXPECT_EQ(hello->message.last_epoch, 0u);
  EXPECT_TRUE(hello->message.services.empty());
}

TEST(ClientRequest, CarriesSeqServiceWatermarkAndPayload) {
  Outcomes out;
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto seq = client->CallAsync("echo", "hello", out.Callback());
  ASSERT_TRUE(seq.ok());
  // A new journal starts its seqs at the clock (microseconds).
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  EXPECT_GT(*seq, static_cast<Seq>(now_us) - 60'000'000u);
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->message.session, "test-session");
  EXPECT_EQ(req->message.seq, *seq);
  EXPECT_EQ(req->message.service, "echo");
  EXPECT_EQ(req->message.completed_watermark, *seq);
  EXPECT_EQ(req->message.flags, 0);
  EXPECT_EQ(req->payload, "hello");
}

TEST(ClientResponse, CompletesTheCallOnceAndDropsDuplicates) {
  Outcomes out;
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto seq = client->CallAsync("echo", "ping", out.Callback());
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("test-session", *seq, "pong");
  broker.Respond("test-session", *seq, "pong again");
  ASSERT_TRUE(out.WaitForCount(1));
  ASSERT_TRUE(
      Eventually([&] { return client->stats().duplicate_responses == 1; }));
  EXPECT_EQ(out.size(), 1u);
  ASSERT_TRUE(out.at(0).ok());
  EXPECT_EQ(out.at(0)->seq, *seq);
  EXPECT_EQ(out.at(0)->status, ErrorCode::kOk);
  EXPECT_EQ(out.at(0)->payload, "pong");
  EXPECT_EQ(client->stats().completed, 1u);
}

TEST(ClientResponse, ErrorStatusReachesTheCaller) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto future = client->CallFuture("nobody", "x");
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  broker.Respond("test-session", req->message.seq, "", ErrorCode::kInDoubt);
  auto r = future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ErrorCode::kInDoubt);
  EXPECT_EQ(client->stats().in_doubt, 1u);
}

TEST(ClientRequest, CallsBeforeWelcomeLeaveAfterIt) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  auto hello = broker.Expect<Hello>();
  ASSERT_TRUE(hello);
  auto seq = client->CallAsync("echo", "early", nullptr);
  ASSERT_TRUE(seq.ok());
  // Journaled but held back: no WELCOME yet.
  EXPECT_FALSE(broker.Expect<Request>(100ms));
  broker.Send(TestWelcome());
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->message.seq, *seq);
  EXPECT_EQ(req->message.flags, 0);
  EXPECT_EQ(req->payload, "early");
}

TEST(ClientResend, PendingCallIsSentAgainWithTheResendFlag) {
  Outcomes out;
  Events events;
  FakeBroker broker;
  ClientOptions o = MemoryOptions(broker);
  o.resend_delay = 50ms;
  auto client = OpenClient(o);
  client->SetRecoveryCallback(events.Callback());
  ASSERT_TRUE(broker.AcceptHello());
  auto seq = client->CallAsync("echo", "again", out.Callback());
  ASSERT_TRUE(seq.ok());
  auto first = broker.Expect<Request>();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.flags, 0);
  auto start = std::chrono::steady_clock::now();
  auto second = broker.Expect<Request>();
  ASSERT_TRUE(second);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(second->message.seq, *seq);
  EXPECT_EQ(second->message.flags, kRequestResend);
  EXPECT_EQ(second->payload, "again");
  broker.Respond("test-session", *seq, "done");
  ASSERT_TRUE(out.WaitForCount(1));
  ClientStats s = client->stats();
  EXPECT_GE(s.requests_resent, 1u);
  EXPECT_EQ(s.responses_recovered, 1u);
  EXPECT_TRUE(Eventually([&] {
    return events.Saw(RecoveryEventKind::kRequestResent) &&
           events.Saw(RecoveryEventKind::kResponseRecovered);
  }));
}

TEST(ClientResend, ResendFollowsTheMeasuredRoundTripNotTheCeiling) {
  Outcomes out;
  FakeBroker broker;
  ClientOptions o = MemoryOptions(broker);
  o.resend_delay = 20s;  // the ceiling; a fixed timer would wait this long
  auto client = OpenClient(o);
  ASSERT_TRUE(broker.AcceptHello());
  // The next request that is not a resend of an operation already answered
  // (on a loaded machine the broker's answer may come after the client's
  // early resend; answering that again is harmless).
  auto next_new = [&](Seq want) -> std::optional<testing::Received<Request>> {
    for (;;) {
      auto r = broker.Expect<Request>(5s);
      if (!r || r->message.seq == want) return r;
      if (r->message.seq > want) return std::nullopt;
    }
  };
  // Answered at once: these measure the round trip.
  for (int i = 0; i < 8; ++i) {
    auto seq = client->CallAsync("echo", "quick", out.Callback());
    ASSERT_TRUE(seq.ok());
    ASSERT_TRUE(next_new(*seq));
    broker.Respond("test-session", *seq, "ok");
  }
  ASSERT_TRUE(out.WaitForCount(8));
  // This one is "lost": the resend comes after about a round trip.
  auto seq = client->CallAsync("echo", "lost", out.Callback());
  ASSERT_TRUE(seq.ok());
  auto first = next_new(*seq);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.flags, 0);
  auto again = next_new(*seq);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message.flags, kRequestResend);
}

TEST(ClientRecover, ResendRequestSendsTheJournaledRequestAtOnce) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));  // resend_delay 5 s
  ASSERT_TRUE(broker.AcceptHello());
  auto seq = client->CallAsync("echo", "lost", nullptr);
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(broker.Expect<Request>());
  Recover rec;
  rec.epoch = kFirstEpoch;
  RecoverSession rs;
  rs.session = "test-session";
  rs.ops.push_back({*seq, Breakpoint::kRequestLost, Action::kResendRequest});
  rec.sessions.push_back(rs);
  broker.Send(rec);
  auto again = broker.Expect<Request>(1s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message.seq, *seq);
  EXPECT_EQ(again->message.flags, kRequestResend);
  EXPECT_EQ(again->payload, "lost");
}

TEST(ClientDeadline, ExpiresTheWaitAndTheOutcomeCanBeCollected) {
  Outcomes out;
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto seq = client->CallAsync("slow", "work", out.Callback(), 100ms);
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(broker.Expect<Request>());
  ASSERT_TRUE(out.WaitForCount(1));
  EXPECT_EQ(out.at(0).status().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(client->stats().deadline_exceeded, 1u);
  auto ops = client->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].state, ClientOpState::kPrepared);

  broker.Respond("test-session", *seq, "finally");
  auto r = client->Collect(*seq, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, "finally");
  EXPECT_EQ(out.size(), 1u);  // the expired caller is not called again
  EXPECT_EQ(client->Collect(*seq + 1000).status().code(), ErrorCode::kNotFound);
}

TEST(ClientDeadline, CollectAsyncDeliversEachOutcomeAsItArrives) {
  Outcomes expired;
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto first = client->CallAsync("slow", "one", expired.Callback(), 50ms);
  auto second = client->CallAsync("slow", "two", expired.Callback(), 50ms);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(expired.WaitForCount(2));

  // Both collected at once; the second is answered first and arrives first.
  Outcomes collected;
  ASSERT_TRUE(client->CollectAsync(*first, collected.Callback(), 5s).ok());
  ASSERT_TRUE(client->CollectAsync(*second, collected.Callback(), 5s).ok());
  broker.Respond("test-session", *second, "two done");
  ASSERT_TRUE(collected.WaitForCount(1));
  ASSERT_TRUE(collected.at(0).ok());
  EXPECT_EQ(collected.at(0)->seq, *second);
  broker.Respond("test-session", *first, "one done");
  ASSERT_TRUE(collected.WaitForCount(2));
  EXPECT_EQ(collected.at(1)->payload, "one done");

  Outcomes missing;
  ASSERT_TRUE(client->CollectAsync(*second + 1000, missing.Callback()).ok());
  ASSERT_TRUE(missing.WaitForCount(1));
  EXPECT_EQ(missing.at(0).status().code(), ErrorCode::kNotFound);
}

TEST(ClientRestart, PreparedOperationSurvivesTheProcess) {
  FakeBroker broker;
  TempDir dir;
  Seq seq = 0;
  {
    auto client = OpenClient(DurableOptions(broker, dir));
    ASSERT_TRUE(broker.AcceptHello());
    auto s = client->CallAsync("bank.transfer", "a b 5", nullptr);
    ASSERT_TRUE(s.ok());
    seq = *s;
    // Once the broker has it, the journal must already hold it.
    ASSERT_TRUE(broker.Expect<Request>());
  }
  auto client = OpenClient(DurableOptions(broker, dir));
  EXPECT_EQ(client->incarnation(), 2u);
  auto ops = client->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].seq, seq);
  EXPECT_EQ(ops[0].service, "bank.transfer");
  EXPECT_EQ(ops[0].state, ClientOpState::kPrepared);
  // Seqs continue above the journaled ones (and above the clock's floor,
  // ClientRestart.SeqsAfterRestartStartAboveTheClock).
  auto next = client->CallAsync("echo", "x", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, seq);
}

// Microseconds since the Unix epoch: the floor below which a client opened
// now must not issue seqs.
Seq MicrosNow() {
  return static_cast<Seq>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// A call its caller's thread journals and sends (the I/O thread asleep) is
// in the journal before the broker sees it: kill -9 of the process right
// after leaves it PREPARED for the next process to recover.
TEST(ClientRestart, CallSentByItsCallerSurvivesKill9) {
  FakeBroker broker;
  TempDir dir;
  const ClientOptions o = DurableOptions(broker, dir);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(report[0]);
    auto client = Client::Open(o);
    if (!client.ok()) ::_exit(1);
    while ((*client)->stats().welcomes == 0) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(100ms);  // the I/O thread goes to sleep
    auto seq = (*client)->CallAsync("bank.transfer", "a b 5", nullptr);
    if (!seq.ok()) ::_exit(2);
    const std::uint64_t out[2] = {*seq,
                                  (*client)->stats().calls_sent_by_caller};
    if (::write(report[1], out, sizeof out) != sizeof out) ::_exit(3);
    for (;;) ::pause();
  }
  ::close(report[1]);
  ASSERT_TRUE(broker.AcceptHello());
  auto req = broker.Expect<Request>();
  std::uint64_t got[2] = {0, 0};
  const bool reported = ::read(report[0], got, sizeof got) == sizeof got;
  ::close(report[0]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(req);
  ASSERT_TRUE(reported);
  EXPECT_EQ(req->message.seq, got[0]);
  EXPECT_EQ(got[1], 1u) << "the call went through the I/O thread's turn";

  auto client = OpenClient(o);
  auto ops = client->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].seq, got[0]);
  EXPECT_EQ(ops[0].state, ClientOpState::kPrepared);
}

TEST(ClientRestart, SeqsAfterRestartStartAboveTheClock) {
  FakeBroker broker;
  TempDir dir;
  Seq first = 0;
  {
    auto client = OpenClient(DurableOptions(broker, dir));
    ASSERT_TRUE(broker.AcceptHello());
    auto s = client->CallAsync("echo", "a", nullptr);
    ASSERT_TRUE(s.ok());
    first = *s;
    ASSERT_TRUE(broker.Expect<Request>());
  }
  const Seq floor = MicrosNow();
  ASSERT_GT(floor, first + 1);
  auto client = OpenClient(DurableOptions(broker, dir));
  auto next = client->CallAsync("echo", "b", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GE(*next, floor);
}

// A journal restored from an older copy has forgotten the seqs issued after
// the copy was taken; the clock's floor keeps the next run above them.
TEST(ClientRestart, JournalRestoredFromAnOlderCopyIssuesNoSeqTwice) {
  FakeBroker broker;
  TempDir dir;
  TempDir backup;
  std::vector<Seq> issued;
  {
    auto client = OpenClient(DurableOptions(broker, dir));
    ASSERT_TRUE(broker.AcceptHello());
    auto s = client->CallAsync("echo", "a", nullptr);
    ASSERT_TRUE(s.ok());
    issued.push_back(*s);
  }
  std::filesystem::copy(dir.path(), backup.path(),
                        std::filesystem::copy_options::recursive |
                            std::filesystem::copy_options::overwrite_existing);
  {
    auto client = OpenClient(DurableOptions(broker, dir));
    for (int i = 0; i < 50; ++i) {
      auto s = client->CallAsync("echo", "b", nullptr);
      ASSERT_TRUE(s.ok());
      issued.push_back(*s);
    }
  }
  std::filesystem::remove_all(dir.path());
  std::filesystem::copy(backup.path(), dir.path(),
                        std::filesystem::copy_options::recursive);
  auto client = OpenClient(DurableOptions(broker, dir));
  ASSERT_EQ(client->ListOperations().size(), 1u);  // the old copy indeed
  auto next = client->CallAsync("echo", "c", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, *std::max_element(issued.begin(), issued.end()));
}

// The broker names a seq this journal never issued (answers or orphans of a
// lost run of the session): later seqs go above it.
TEST(ClientSeq, ResponseForAnUnissuedSeqMovesNextSeqPastIt) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto first = client->CallAsync("echo", "a", nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(broker.Expect<Request>());
  const Seq foreign = *first + 1'000'000'000;
  broker.Respond("test-session", foreign, "old answer");
  ASSERT_TRUE(
      Eventually([&] { return client->stats().duplicate_responses == 1; }));
  auto next = client->CallAsync("echo", "b", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, foreign);
}

TEST(ClientSeq, RecoverNamingAnUnissuedSeqMovesNextSeqPastIt) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  auto first = client->CallAsync("echo", "a", nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(broker.Expect<Request>());
  const Seq foreign = *first + 1'000'000'000;
  Recover r;
  r.epoch = TestWelcome().epoch;
  r.sessions.push_back(RecoverSession{
      "test-session",
      *first,
      {OpDecision{foreign, Breakpoint::kOrphanResponse, Action::kKeepOrphan}}});
  ASSERT_TRUE(broker.Send(r));
  // A probe answered after the RECOVER shows it was handled.
  ASSERT_TRUE(broker.Send(Probe{7, "test-session", {*first}}));
  ASSERT_TRUE(broker.Expect<ProbeReply>());
  auto next = client->CallAsync("echo", "b", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, foreign);
}

TEST(ClientRestart, StateExchangeCarriesPendingAndCompleted) {
  Events events;
  FakeBroker broker;
  TempDir dir;
  ClientOptions o = DurableOptions(broker, dir);
  o.keep_completed = true;
  Seq a = 0, b = 0;
  {
    Outcomes out;  // outlives the client, which calls it at close
    auto client = OpenClient(o);
    ASSERT_TRUE(broker.AcceptHello());
    a = *client->CallAsync("echo", "a", out.Callback());
    b = *client->CallAsync("echo", "b", out.Callback());
    ASSERT_TRUE(broker.Expect<Request>());
    ASSERT_TRUE(broker.Expect<Request>());
    broker.Respond("test-session", b, "reply b");
    ASSERT_TRUE(out.WaitForCount(1));
  }
  auto client = OpenClient(o);
  client->SetRecoveryCallback(events.Callback());
  auto hello = broker.AcceptHello();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->incarnation, 2u);
  auto x = broker.Expect<StateExchange>();
  ASSERT_TRUE(x);
  EXPECT_EQ(x->message.role, Role::kClient);
  ASSERT_EQ(x->message.clients.size(), 1u);
  const ClientVector& v = x->message.clients[0];
  EXPECT_EQ(v.session, "test-session");
  EXPECT_EQ(v.incarnation, 2u);
  EXPECT_EQ(v.journal_id, hello->journal_id);
  EXPECT_EQ(v.completed_watermark, a);
  // Raised to the clock's floor at open: above b in any case.
  EXPECT_GT(v.next_seq, b);
  EXPECT_EQ(v.pending, std::vector<Seq>{a});
  EXPECT_EQ(v.completed, std::vector<Seq>{b});
  EXPECT_TRUE(Eventually([&] { return client->stats().state_exchanges == 1; }));
  EXPECT_TRUE(Eventually(
      [&] { return events.Saw(RecoveryEventKind::kStateExchanged); }));

  auto ops = client->ListOperations();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].state, ClientOpState::kPrepared);
  EXPECT_EQ(ops[1].state, ClientOpState::kCompleted);
  auto rb = client->Collect(b);
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->payload, "reply b");

  // The outcome of `a` arrives after the restart: collected, and counted as
  // recovered.
  broker.Respond("test-session", a, "reply a");
  auto ra = client->Collect(a, 2s);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  EXPECT_EQ(ra->payload, "reply a");
  EXPECT_EQ(client->stats().responses_recovered, 1u);
}

TEST(ClientRestart, EmptyResponseIsNotConfusedWithTheRequest) {
  FakeBroker broker;
  TempDir dir;
  ClientOptions o = DurableOptions(broker, dir);
  o.keep_completed = true;
  Seq seq = 0;
  {
    auto client = OpenClient(o);
    ASSERT_TRUE(broker.AcceptHello());
    auto future = client->CallFuture("echo", "request bytes");
    auto req = broker.Expect<Request>();
    ASSERT_TRUE(req);
    seq = req->message.seq;
    broker.Respond("test-session", seq, "");
    auto r = future.get();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->payload, "");
  }
  auto client = OpenClient(o);
  auto r = client->Collect(seq);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, "");
}

TEST(ClientJournal, SecondOpenOnTheSameJournalIsLocked) {
  FakeBroker broker;
  TempDir dir;
  auto first = OpenClient(DurableOptions(broker, dir));
  auto second = Client::Open(DurableOptions(broker, dir));
  EXPECT_EQ(second.status().code(), ErrorCode::kJournalLocked);
}

TEST(ClientJournal, OpenFromAnotherProcessIsLocked) {
  FakeBroker broker;
  TempDir dir;
  auto first = OpenClient(DurableOptions(broker, dir));
  ClientOptions o = DurableOptions(broker, dir);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto second = Client::Open(o);
    ::_exit(!second.ok() && second.status().code() == ErrorCode::kJournalLocked
                ? 0
                : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ClientJournal, SharedJournalKeepsEachSessionsOperations) {
  FakeBroker broker;
  TempDir dir;
  Seq a_seq = 0;
  Seq b_seq = 0;
  {
    auto shared = SharedJournal::Open(dir.path(), Durability::kSync);
    ASSERT_TRUE(shared.ok()) << shared.status().ToString();
    ClientOptions a = MemoryOptions(broker, "session-a");
    a.shared_journal = *shared;
    ClientOptions b = MemoryOptions(broker, "session-b");
    b.shared_journal = *shared;
    auto client_a = OpenClient(a);
    auto client_b = OpenClient(b);
    // A second client of a session on the same shared journal is refused.
    EXPECT_EQ(Client::Open(a).status().code(), ErrorCode::kJournalLocked);
    auto sa = client_a->CallAsync("bank.transfer", "a", nullptr);
    auto sb = client_b->CallAsync("bank.audit", "b", nullptr);
    ASSERT_TRUE(sa.ok() && sb.ok());
    a_seq = *sa;
    b_seq = *sb;
  }  // closing the clients commits what they accepted
  auto shared = SharedJournal::Open(dir.path(), Durability::kSync);
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  ClientOptions b = MemoryOptions(broker, "session-b");
  b.shared_journal = *shared;
  auto client_b = OpenClient(b);
  EXPECT_EQ(client_b->incarnation(), 2u);
  auto ops = client_b->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].seq, b_seq);
  EXPECT_EQ(ops[0].service, "bank.audit");
  ClientOptions a = MemoryOptions(broker, "session-a");
  a.shared_journal = *shared;
  auto client_a = OpenClient(a);
  ops = client_a->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].seq, a_seq);
  auto next = client_a->CallAsync("echo", "x", nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, a_seq);
}

TEST(ClientJournal, SharedJournalExcludesAJournalDir) {
  FakeBroker broker;
  TempDir dir;
  auto shared = SharedJournal::Open(dir.path(), Durability::kProcess);
  ASSERT_TRUE(shared.ok());
  ClientOptions o = DurableOptions(broker, dir);
  o.shared_journal = *shared;
  EXPECT_EQ(Client::Open(o).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ClientLimits, MaxOutstandingRefusesAsyncAndMakesCallWait) {
  FakeBroker broker;
  ClientOptions o = MemoryOptions(broker);
  o.max_outstanding = 8;
  auto client = OpenClient(o);
  ASSERT_TRUE(broker.AcceptHello(
      TestWelcome(kFirstEpoch, /*heartbeat_ms=*/5000, /*max_outstanding=*/2)));
  // The broker's lower bound applies once WELCOME is read.
  ASSERT_TRUE(Eventually([&] {
    auto s = client->CallAsync("echo", "probe", nullptr);
    if (!s.ok()) return s.status().code() == ErrorCode::kLimitExceeded;
    return false;
  }));
  std::vector<Seq> seqs;
  for (int i = 0; i < 2; ++i) {
    auto r = broker.Expect<Request>();
    ASSERT_TRUE(r);
    seqs.push_back(r->message.seq);
  }
  EXPECT_EQ(client->CallAsync("echo", "x", nullptr).status().code(),
            ErrorCode::kLimitExceeded);
  std::atomic<bool> done{false};
  Result<Reply> sync_result(ErrorCode::kInternal, "not run");
  std::thread caller([&] {
    sync_result = client->Call("echo", "sync", 3s);
    done = true;
  });
  // Call waits for a slot: nothing leaves until a response frees one.
  EXPECT_FALSE(broker.Expect<Request>(100ms));
  broker.Respond("test-session", seqs[0], "one");
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->payload, "sync");
  broker.Respond("test-session", req->message.seq, "sync reply");
  caller.join();
  ASSERT_TRUE(sync_result.ok()) << sync_result.status().ToString();
  EXPECT_EQ(sync_result->payload, "sync reply");
}

TEST(ClientAck, CarriesWatermarkAndCompletedSeqsAboveIt) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  Seq a = *client->CallAsync("echo", "a", nullptr);
  Seq b = *client->CallAsync("echo", "b", nullptr);
  ASSERT_TRUE(broker.Expect<Request>());
  ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("test-session", b, "rb");
  auto ack = broker.Expect<Ack>();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->message.session, "test-session");
  EXPECT_EQ(ack->message.completed_watermark, a);
  EXPECT_EQ(ack->message.seqs, std::vector<Seq>{b});
  broker.Respond("test-session", a, "ra");
  ack = broker.Expect<Ack>();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->message.completed_watermark, b + 1);
  EXPECT_TRUE(ack->message.seqs.empty());
  // Delivered and acknowledged: dropped from the journal by default.
  EXPECT_TRUE(Eventually([&] { return client->ListOperations().empty(); }));
}

TEST(ClientForget, DropsOnlyCompletedOperations) {
  FakeBroker broker;
  ClientOptions o = MemoryOptions(broker);
  o.keep_completed = true;
  auto client = OpenClient(o);
  ASSERT_TRUE(broker.AcceptHello());
  auto future = client->CallFuture("echo", "f");
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  Seq seq = req->message.seq;
  EXPECT_EQ(client->Forget(seq).code(), ErrorCode::kInvalidArgument);
  broker.Respond("test-session", seq, "r");
  ASSERT_TRUE(future.get().ok());
  ASSERT_TRUE(broker.Expect<Ack>());
  EXPECT_EQ(client->ListOperations().size(), 1u);  // kept until Forget
  EXPECT_TRUE(client->Forget(seq).ok());
  EXPECT_EQ(client->Forget(seq).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(client->ListOperations().empty());
}

TEST(ClientInput, MalformedFramesAreDroppedAndTheClientKeepsWorking) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(broker.SendFrames({"garbage"}));
  ASSERT_TRUE(broker.SendFrames({"", "", "", ""}));
  ASSERT_TRUE(broker.SendFrames({std::string(100, '\xff'), "payload"}));
  Hello wrong_way;  // well-formed, but never sent by a broker
  wrong_way.id = "x";
  wrong_way.incarnation = 1;
  wrong_way.journal_id = 1;
  broker.Send(wrong_way);
  ASSERT_TRUE(Eventually([&] { return client->stats().malformed >= 4; }));
  auto future = client->CallFuture("echo", "still here");
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  broker.Respond("test-session", req->message.seq, "yes");
  auto r = future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->payload, "yes");
}

TEST(ClientProbe, IsAnsweredWithTheClientVectorOfTheProbedSeqs) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  Seq a = *client->CallAsync("echo", "a", nullptr);
  Seq b = *client->CallAsync("echo", "b", nullptr);
  ASSERT_TRUE(broker.Expect<Request>());
  ASSERT_TRUE(broker.Expect<Request>());
  Probe p;
  p.probe_id = 77;
  p.session = "test-session";
  p.seqs = {b};
  broker.Send(p);
  auto reply = broker.Expect<ProbeReply>();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->message.probe_id, 77u);
  EXPECT_EQ(reply->message.role, Role::kClient);
  ASSERT_EQ(reply->message.clients.size(), 1u);
  EXPECT_EQ(reply->message.clients[0].completed_watermark, a);
  EXPECT_EQ(reply->message.clients[0].pending, std::vector<Seq>{b});
  EXPECT_EQ(reply->message.clients[0].next_seq, b + 1);
}

TEST(ClientBroker, UnknownSessionErrorBringsANewHello) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  Error e;
  e.code = ErrorCode::kUnknownSession;
  e.message = "who are you";
  broker.Send(e);
  auto hello = broker.Expect<Hello>(1s);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->message.last_epoch, kFirstEpoch);
}

TEST(ClientBroker, DuplicateIdentityIsRetried) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.Expect<Hello>());
  Error e;
  e.code = ErrorCode::kDuplicateIdentity;
  e.message = "held by a live process";
  // The first retry comes soon, later ones back off to 100 ms: a process
  // killed a moment ago is noticed within milliseconds, a live duplicate
  // must not be asked about in a tight loop.
  std::vector<std::chrono::steady_clock::duration> gaps;
  for (int i = 0; i < 6; ++i) {
    broker.Send(e);
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(broker.Expect<Hello>(1s));
    gaps.push_back(std::chrono::steady_clock::now() - start);
  }
  EXPECT_GE(gaps[0], 10ms);
  EXPECT_GE(gaps[1], 20ms);
  EXPECT_GE(gaps[5], 100ms);
}

// A fenced session fails its waiters once and asks again after a second
// (FLOWS.md §1), the same rule as a server's.
TEST(ClientBroker, FencedFailsWaitersAndAsksAgainAfterASecond) {
  Outcomes out;
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.Expect<Hello>());
  ASSERT_TRUE(client->CallAsync("echo", "x", out.Callback()).ok());
  Error e;
  e.code = ErrorCode::kFenced;
  e.message = "a newer incarnation holds it";
  e.ref_type = static_cast<std::uint8_t>(MessageType::kHello);
  broker.Send(e);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(out.WaitForCount(1));
  EXPECT_EQ(out.at(0).status().code(), ErrorCode::kFenced);
  ASSERT_TRUE(broker.Expect<Hello>(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1000ms);
}

TEST(ClientBroker, RestartBringsHelloAndStateExchange) {
  Outcomes out;
  Events events;
  auto broker = std::make_unique<FakeBroker>();
  const std::string endpoint = broker->endpoint();
  auto client = OpenClient(MemoryOptions(*broker));
  client->SetRecoveryCallback(events.Callback());
  ASSERT_TRUE(broker->AcceptHello(TestWelcome(kFirstEpoch)));
  Seq seq = *client->CallAsync("echo", "across", out.Callback());
  ASSERT_TRUE(broker->Expect<Request>());

  broker.reset();  // the broker dies with the request
  broker = std::make_unique<FakeBroker>(endpoint);
  auto hello = broker->AcceptHello(TestWelcome(kSecondEpoch));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->last_epoch, kFirstEpoch);
  auto x = broker->Expect<StateExchange>();
  ASSERT_TRUE(x);
  ASSERT_EQ(x->message.clients.size(), 1u);
  EXPECT_EQ(x->message.clients[0].pending, std::vector<Seq>{seq});
  EXPECT_TRUE(Eventually([&] {
    return events.Saw(RecoveryEventKind::kBrokerReturned) &&
           events.Saw(RecoveryEventKind::kStateExchanged);
  }));
  broker->Respond("test-session", seq, "made it");
  ASSERT_TRUE(out.WaitForCount(1));
  ASSERT_TRUE(out.at(0).ok());
  EXPECT_EQ(out.at(0)->payload, "made it");
}

TEST(ClientBroker, SilentBrokerIsDeclaredDeadAndGreetedAgain) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(
      broker.AcceptHello(TestWelcome(kFirstEpoch, /*heartbeat_ms=*/50)));
  // Heartbeats go out while the client is idle...
  ASSERT_TRUE(broker.Expect<Heartbeat>(1s));
  // ...and after 3 silent intervals the client says HELLO again.
  auto hello = broker.Expect<Hello>(2s);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->message.last_epoch, kFirstEpoch);
}

TEST(ClientClose, WaitersGetClosedAndCallsAfterwardFail) {
  Outcomes out;
  FakeBroker broker;
  {
    auto client = OpenClient(MemoryOptions(broker));
    ASSERT_TRUE(broker.AcceptHello());
    ASSERT_TRUE(
        client->CallAsync("echo", "never answered", out.Callback()).ok());
    ASSERT_TRUE(broker.Expect<Request>());
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out.at(0).status().code(), ErrorCode::kClosed);
  EXPECT_TRUE(broker.Expect<Goodbye>(1s));
}

// A call's deadline says why when nothing ever answered at the endpoint,
// and only then.
TEST(ClientCall, DeadlineWithoutAnyWelcomeSaysNoBrokerAnswered) {
  FakeBroker silent;  // takes the connection, never answers HELLO
  auto client = OpenClient(MemoryOptions(silent));
  auto r = client->Call("echo", "x", 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(
      r.status().message().find("no broker answered at " + silent.endpoint()),
      std::string::npos)
      << r.status().message();
}

TEST(ClientCall, DeadlineAfterWelcomeDoesNotBlameTheBroker) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(Eventually([&] { return client->stats().welcomes == 1; }));
  auto r = client->Call("echo", "x", 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().message().find("no broker"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("still pending"), std::string::npos);
}

// Blocking calls, each answered by the test: `calls` in a row, returning
// how many the caller's thread journaled and sent itself.
std::uint64_t CallAndAnswer(Client& client, FakeBroker& broker, int calls) {
  for (int i = 0; i < calls; ++i) {
    const std::string payload = "ping-" + std::to_string(i);
    Result<Reply> reply = Status(ErrorCode::kInternal, "not returned");
    std::thread caller([&] { reply = client.Call("echo", payload); });
    // A resend of an earlier call (the client times its resends by the
    // round trips it measured, which a slow machine can outlast) is not
    // this call's request.
    auto req = broker.Expect<Request>();
    while (req && req->payload != payload &&
           (req->message.flags & kRequestResend) != 0) {
      req = broker.Expect<Request>();
    }
    EXPECT_TRUE(req);
    if (req) {
      EXPECT_EQ(req->payload, payload);
      broker.Respond("test-session", req->message.seq, "pong-" + payload);
    }
    caller.join();
    EXPECT_TRUE(reply.ok()) << reply.status().ToString();
    if (reply.ok()) {
      EXPECT_EQ(reply->payload, "pong-" + payload);
    }
  }
  return client.stats().calls_sent_by_caller;
}

TEST(ClientCall, CallWhileTheIoThreadSleepsLeavesOnTheCallersThread) {
  TempDir dir;
  FakeBroker broker;
  auto client = OpenClient(DurableOptions(broker, dir));
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(Eventually([&] { return client->stats().welcomes == 1; }));
  // The I/O thread sleeps between these calls (nothing else happens on the
  // session), so nearly every one leaves on its caller's thread; a call
  // that meets the loop awake (a heartbeat, an ACK) queues for its turn.
  const std::uint64_t by_caller = CallAndAnswer(*client, broker, 20);
  EXPECT_GE(by_caller, 1u);
  EXPECT_LE(by_caller, 20u);
  EXPECT_EQ(client->stats().completed, 20u);
}

TEST(ClientCall, SyncCommitsLeaveWithTheIoThreadsTurn) {
  // fdatasync'd commits are grouped by the I/O thread's turn, never made
  // by one caller alone.
  TempDir dir;
  FakeBroker broker;
  ClientOptions o = DurableOptions(broker, dir);
  o.durability = Durability::kSync;
  auto client = OpenClient(o);
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(Eventually([&] { return client->stats().welcomes == 1; }));
  EXPECT_EQ(CallAndAnswer(*client, broker, 5), 0u);
}

TEST(ClientCall, CallFromACallbackLeavesWithTheIoThreadsTurn) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  ASSERT_TRUE(broker.AcceptHello());
  Outcomes out;
  auto first = client->CallAsync("echo", "first", [&](const Result<Reply>&) {
    // On the I/O thread: queued for its turn, not sent from here.
    EXPECT_TRUE(client->CallAsync("echo", "second", out.Callback()).ok());
  });
  ASSERT_TRUE(first.ok());
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->payload, "first");
  broker.Respond("test-session", req->message.seq, "one");
  auto second = broker.Expect<Request>();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->payload, "second");
  broker.Respond("test-session", second->message.seq, "two");
  ASSERT_TRUE(out.WaitForCount(1));
  // The first call, made on the test's thread, may have left from it.
  EXPECT_LE(client->stats().calls_sent_by_caller, 1u);
}

TEST(ClientCall, InvalidServiceNameIsRefused) {
  FakeBroker broker;
  auto client = OpenClient(MemoryOptions(broker));
  EXPECT_EQ(client->CallAsync("", "x", nullptr).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(client->CallAsync("bad name", "x", nullptr).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rejoin
