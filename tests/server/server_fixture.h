// The small vocabulary the server tests are written in: a Server under test
// wired to a FakeBroker, handlers that count and block, and a way to write a
// journal as a previous incarnation would have left it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rejoin/proto/journal.h"
#include "rejoin/server/server.h"
#include "support/fake_broker.h"
#include "support/temp_dir.h"

namespace rejoin::testing {

inline constexpr char kServerId[] = "server-1";

// Lets handlers wait until the test opens it; records how many wait at once.
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    max_waiting_ = std::max(max_waiting_, waiting_);
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --waiting_;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // True when `n` handlers wait, within `timeout`.
  bool AwaitWaiting(int n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return waiting_ >= n; });
  }
  int max_waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
  int max_waiting_ = 0;
};

// An echo service that counts its runs.
inline ServiceOptions CountingEcho(std::atomic<int>& runs,
                                   std::string name = "echo") {
  ServiceOptions s;
  s.name = std::move(name);
  s.handler = [&runs](const RequestView& r) {
    ++runs;
    return HandlerReply{ErrorCode::kOk, "echo:" + std::string(r.payload)};
  };
  return s;
}

inline ServerOptions TestOptions(const FakeBroker& broker,
                                 const std::string& journal_dir = "") {
  ServerOptions o;
  o.endpoint = broker.endpoint();
  o.server_id = kServerId;
  o.journal_dir = journal_dir;
  o.durability =
      journal_dir.empty() ? Durability::kMemory : Durability::kProcess;
  o.concurrency = 2;
  o.heartbeat = std::chrono::milliseconds(200);
  return o;
}

inline std::unique_ptr<Server> MustOpen(ServerOptions options,
                                        std::vector<ServiceOptions> services) {
  Result<std::unique_ptr<Server>> s =
      Server::Open(std::move(options), std::move(services));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  return std::move(*s);
}

// Writes records into the server journal at `dir` as an earlier incarnation
// that then died: the next Server on `dir` finds them.
class CraftedJournal {
 public:
  explicit CraftedJournal(const std::string& dir) {
    JournalOptions o;
    o.dir = dir;
    o.durability = Durability::kProcess;
    o.role = JournalRole::kServer;
    o.owner_id = kServerId;
    Result<std::unique_ptr<Journal>> j = Journal::Open(std::move(o));
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    if (j.ok()) journal_ = std::move(*j);
  }
  ~CraftedJournal() {
    if (journal_) {
      EXPECT_TRUE(journal_->Commit().ok());
    }
  }

  void Received(const SessionId& session, Seq seq, const std::string& service,
                const std::string& request) {
    JournalOp op;
    op.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
    op.service = service;
    op.payload = request;
    EXPECT_TRUE(journal_->AppendOp(session, seq, std::move(op)).ok());
  }

  Journal& journal() { return *journal_; }

 private:
  std::unique_ptr<Journal> journal_;
};

// A RECOVER with one decision for `session`.
inline Recover RecoverWith(const SessionId& session, Action action, Seq seq = 1,
                           Seq release_below = 1) {
  Recover r;
  r.epoch = TestWelcome().epoch;
  RecoverSession rs;
  rs.session = session;
  rs.release_below = release_below;
  rs.ops.push_back(OpDecision{seq, Breakpoint::kConsistent, action});
  r.sessions.push_back(std::move(rs));
  return r;
}

}  // namespace rejoin::testing
