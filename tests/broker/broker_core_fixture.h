// The harness of the broker core's tests: decoded messages go into a
// BrokerCore with the connection (and principal) they came from and a fake
// clock; what the core puts in its outbox comes out as decoded messages per
// connection. No sockets, no sleeps.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/broker_core.h"
#include "rejoin/proto/codec.h"
#include "support/view_frames.h"

namespace rejoin::broker_internal::core_test {

using std::chrono::milliseconds;

// One message the core sent, decoded.
struct Sent {
  std::string route;
  Message message;
  std::string payload;
};

// Records what the core sends; SendNow reports the routes marked gone.
class RecordingOutbox final : public Outbox {
 public:
  void Send(const std::string& route, const Message& m) override {
    sent_.push_back({route, m, {}});
  }
  void Envelope(const std::string& route, zmq::message_t& header,
                zmq::message_t& payload) override {
    auto m =
        DecodeHeader(std::string_view(static_cast<const char*>(header.data()),
                                      header.size()),
                     2, payload.size());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    sent_.push_back({route, *m, payload.to_string()});
  }
  void Forward(const std::string& route, std::string_view header) override {
    auto m = DecodeHeader(header, 1);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    sent_.push_back({route, *m, {}});
  }
  bool Waiting(const std::string& route) const override {
    for (const Sent& s : sent_) {
      if (s.route == route) return true;
    }
    return false;
  }
  bool SendNow(const std::string& route, const Message&) override {
    return gone_.count(route) == 0;
  }

  std::vector<Sent> Take() { return std::exchange(sent_, {}); }
  void MarkGone(const std::string& route) { gone_.insert(route); }

 private:
  std::vector<Sent> sent_;
  std::set<std::string> gone_;
};

// The roster file in memory.
class MemoryRoster final : public RosterStore {
 public:
  Status Write(const RosterContents& contents) override {
    contents_ = contents;
    ++writes_;
    return Status::Ok();
  }
  bool Remove() override { return true; }
  const std::string& name() const override { return name_; }
  RosterContents contents_;
  int writes_ = 0;

 private:
  std::string name_ = "memory";
};

inline constexpr Epoch kEpoch = 0xE90C;
inline const std::string kClientRoute = "client-conn";
inline const std::string kServerRoute = "server-conn";

class BrokerCoreTest : public ::testing::Test {
 protected:
  BrokerCoreTest() {
    options_.grace = milliseconds(0);
    // Peers count as silent after three heartbeats: long enough that tests
    // not about silence need not keep their peers talking.
    options_.heartbeat = milliseconds(1000);
    options_.probe = milliseconds(50);
    options_.lease = milliseconds(1000);
    options_.replay_hold = milliseconds(0);
  }

  // Builds the core (after the test set its options) and starts it.
  BrokerCore& Start(RosterStore* roster = nullptr,
                    Result<RosterContents> read =
                        Result<RosterContents>(ErrorCode::kNotFound, "none")) {
    core_ = std::make_unique<BrokerCore>(options_, kEpoch, out_);
    if (roster != nullptr) {
      EXPECT_TRUE(core_->KeepRoster(*roster, std::move(read)).ok());
    }
    core_->Start(now_);
    return *core_;
  }

  // One message from `route`, handled in a turn of its own; returns what
  // the core sent in that turn.
  // `principal`: the sender's, as the shell names it (empty without CURVE).
  std::vector<Sent> Deliver(const std::string& route, Message m,
                            std::string payload = {},
                            std::string_view principal = {}) {
    const std::string header = EncodeHeader(m);
    rejoin::testing::ViewFrames frames(header, payload);
    core_->OnMessage(route, m, frames, now_, principal);
    core_->EndTurn(now_);
    return out_.Take();
  }

  // Time passes; the core's timers run every few milliseconds on the way,
  // as the shell's loop runs them.
  std::vector<Sent> Advance(milliseconds by) {
    const Time end = now_ + by;
    while (now_ < end) {
      now_ = std::min(end, now_ + milliseconds(5));
      core_->Tick(now_);
      core_->EndTurn(now_);
    }
    return out_.Take();
  }

  Hello ClientHello(const std::string& sid, Incarnation inc = 1,
                    JournalId journal = 11) {
    return Hello{Role::kClient, sid, inc, journal, 0, {}};
  }
  Hello ServerHello(const std::string& id, ServiceSpec spec,
                    Incarnation inc = 1, JournalId journal = 21,
                    Epoch last_epoch = 0) {
    return Hello{Role::kServer, id, inc, journal, last_epoch, {spec}};
  }
  static ServiceSpec Service(std::uint32_t credit, bool idempotent = false) {
    return ServiceSpec{"echo", credit, idempotent,
                       InDoubtPolicy::kAnswerInDoubt};
  }
  Request Call(const std::string& sid, Seq seq, std::uint8_t flags = 0) {
    Request r;
    r.session = sid;
    r.seq = seq;
    r.service = "echo";
    r.completed_watermark = 1;
    r.flags = flags;
    return r;
  }

  // Both peers welcomed: a client session "s1" and a server "srv-a".
  void Connect(ServiceSpec spec = Service(4)) {
    ASSERT_EQ(Deliver(kServerRoute, ServerHello("srv-a", spec)).size(), 1u);
    ASSERT_EQ(Deliver(kClientRoute, ClientHello("s1")).size(), 1u);
  }

  // Session s1's client vector as Connect's client journals it
  // (incarnation 1, journal 11, nothing completed) with `pending` sent.
  static ClientVector S1Vector(Seq next_seq, std::vector<Seq> pending) {
    ClientVector cv;
    cv.session = "s1";
    cv.incarnation = 1;
    cv.journal_id = 11;
    cv.next_seq = next_seq;
    cv.completed_watermark = 1;
    cv.pending = std::move(pending);
    return cv;
  }

  // The messages of type T among `sent` that went to `route`.
  template <typename T>
  static std::vector<T> To(const std::vector<Sent>& sent,
                           const std::string& route) {
    std::vector<T> out;
    for (const Sent& s : sent) {
      if (s.route != route) continue;
      if (const T* m = std::get_if<T>(&s.message)) out.push_back(*m);
    }
    return out;
  }

  bool InGrace() const {
    BrokerStatus st;
    core_->FillStatus(st, now_);
    return st.in_grace;
  }

  BrokerOptions options_;
  RecordingOutbox out_;
  Time now_ = Time{} + std::chrono::hours(1);
  std::unique_ptr<BrokerCore> core_;
};

}  // namespace rejoin::broker_internal::core_test
