// SessionCore: one client session's operation logic without I/O (FLOWS.md
// §3-§6, client side). Calls are journaled PREPARED and queued; answers are
// journaled COMPLETED and handed to their waiters; RECOVER, PROBE and the
// state exchange are answered from the journal; resends are timed by the
// round-trip estimate (rtt_estimator.h) and hinted by the order of answers
// (reorder_slack.h); acknowledged outcomes are dropped. It reads and writes
// only the session's records (SessionRecords), sends through a SessionWire,
// and takes the time as an argument: Client::Impl (client_impl.h) and the
// simulation (tests/sim) run this same code.
//
// The caller keeps the turn discipline: it commits the records after a
// turn's calls into the core, then calls Flush() (which sends) and hands
// deliveries() to the callers. Single-threaded.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "rejoin/client/client.h"
#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "rejoin/proto/state_vector.h"
#include "reorder_slack.h"
#include "rtt_estimator.h"
#include "seq_set.h"
#include "session_records.h"

namespace rejoin::client_internal {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Longest wait between resends of one operation (FLOWS.md §1).
inline constexpr std::chrono::milliseconds kMaxResendDelay{2000};
// How many completed-after-resend seqs are remembered for that detection.
inline constexpr std::size_t kRecentResends = 1024;
// Sends remembered for the loss hint at most (SessionCore::sends_).
inline constexpr std::size_t kMaxTrackedSends = std::size_t{1} << 16;
// Below that many calls in flight the resend timer does the detecting.
static_assert(ReorderSlack::kMax == RttEstimator::kFewInFlight);
// Completions above the watermark are acknowledged after this, or at once
// when kAckBatch of them wait (FLOWS.md §6).
inline constexpr std::chrono::milliseconds kAckDelay{20};
inline constexpr std::size_t kAckBatch = 1024;
// Requests sent together in one ZeroMQ message (transport::Batch).
inline constexpr std::size_t kSendBatch = 256;

// Someone waiting for the outcome of one operation.
struct Waiter {
  std::uint64_t id = 0;
  Client::Callback callback;
  TimePoint deadline;
  // The original caller (CallAsync), as opposed to a Collect: once it has
  // the outcome the journal entry may be dropped automatically.
  bool is_caller = false;
};

// An operation journaled PREPARED and not yet COMPLETED.
struct PendingOp {
  std::string service;
  std::vector<Waiter> waiters;
  bool sent = false;       // handed to the socket by this process
  bool queued = false;     // in send_queue_
  bool inherited = false;  // issued by an earlier process of the session
  bool resent = false;     // sent with the resend flag or recovered
  int attempts = 0;
  TimePoint last_sent;           // the latest send, for the round-trip estimate
  std::uint64_t send_order = 0;  // of the latest send, across the session
  TimePoint next_resend;
};

// A REQUEST waiting for the socket.
struct SendItem {
  Seq seq = 0;
  std::uint8_t flags = 0;
};

// A timer entry: fires at `at` for `seq` (and `waiter` for deadlines). Stale
// entries (the operation completed first) are skipped when they fire, and
// swept out when they outnumber the live ones (PruneIf): a deadline is
// seconds away, and a busy client completes a million calls in that time.
struct TimerEntry {
  TimePoint at;
  Seq seq = 0;
  std::uint64_t waiter = 0;
  bool operator>(const TimerEntry& o) const { return at > o.at; }
};
class TimerHeap
    : public std::priority_queue<TimerEntry, std::vector<TimerEntry>,
                                 std::greater<TimerEntry>> {
 public:
  // Removes the entries `stale` selects and restores the heap: O(size).
  template <typename Pred>
  void PruneIf(Pred stale) {
    c.erase(std::remove_if(c.begin(), c.end(), stale), c.end());
    std::make_heap(c.begin(), c.end(), comp);
  }
};
// A timer heap is swept when it holds more than this many entries beyond
// twice the operations pending.
inline constexpr std::size_t kTimerSlack = 1024;

// Control messages are built when they are sent, after the turn's commit,
// so they describe exactly what the journal holds.
struct OutStateExchange {};
struct OutProbeReply {
  std::uint64_t probe_id = 0;
  std::vector<Seq> seqs;
};
struct OutAck {};
using OutItem = std::variant<Message, OutStateExchange, OutProbeReply, OutAck>;

struct AtomicStats {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> requests_resent{0};
  std::atomic<std::uint64_t> responses_recovered{0};
  std::atomic<std::uint64_t> in_doubt{0};
  std::atomic<std::uint64_t> duplicate_responses{0};
  std::atomic<std::uint64_t> state_exchanges{0};
  std::atomic<std::uint64_t> deadline_exceeded{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> welcomes{0};
  std::atomic<std::uint64_t> calls_sent_by_caller{0};
};

// Where the session's messages go.
class SessionWire {
 public:
  virtual ~SessionWire() = default;
  // A control message; false when it did not leave.
  virtual bool Send(const Message& m) = 0;
  // REQUESTs leave in batches: cleared, added one by one (`payload` is
  // copied), then sent together. SendRequests is false when nothing left
  // (the socket would block); the core adds them again next time.
  virtual void AddRequest(const Request& r, std::string_view payload) = 0;
  virtual bool SendRequests() = 0;
  virtual void ClearRequests() = 0;
};

class SessionCore {
 public:
  using Deliveries = std::vector<std::pair<Client::Callback, Result<Reply>>>;

  // Rebuilds the session's operations from `records`: PREPARED ones are
  // pending (inherited from an earlier process) and resent when their timer
  // fires. Seqs continue from `first_seq` or the journal's next seq,
  // whichever is higher. `options` (session id, endpoint, resend delay,
  // keep_completed), `records`, `conn` (the session's connection life
  // cycle: is it welcomed), `stats` and `wire` must outlive the core.
  // `skipped` is told when a message names a seq above any this journal
  // issued (new seqs must start above it).
  SessionCore(const ClientOptions& options, SessionRecords& records,
              const EndpointMachine& conn, Incarnation incarnation,
              JournalId journal_id, AtomicStats& stats, SessionWire& wire,
              std::function<void(Seq)> skipped, Seq first_seq, TimePoint now);
  SessionCore(const SessionCore&) = delete;
  SessionCore& operator=(const SessionCore&) = delete;

  // --- Commands (FLOWS.md §3) ---------------------------------------------
  // Journals `seq` PREPARED and queues it; `waiter` gets the outcome (or the
  // journal's error) through deliveries().
  void Call(Seq seq, std::string service, std::string payload, Waiter waiter);
  // `waiter` gets the outcome of `seq` when it completes (at once when the
  // journal has it; kNotFound when it holds nothing for it).
  void Collect(Seq seq, Waiter waiter);
  // Drops a completed outcome from the journal.
  Status Forget(Seq seq);
  std::vector<OperationInfo> List() const;
  std::uint64_t NewWaiterId() { return next_waiter_id_++; }

  // --- Messages and time --------------------------------------------------
  // RESPONSE, RECOVER and PROBE; false for any other type (not the core's).
  // `now`: when the message was read.
  bool OnMessage(Message& m, std::string_view payload, TimePoint now);
  // The session is being welcomed: calls that never left are queued ahead
  // of the state exchange.
  void OnWelcomed();
  // The session has records the broker may lack
  // (EndpointMachine::Input::records): calls sent or inherited, outcomes
  // not yet acknowledged or still above the watermark.
  bool HasRecords() const;
  void QueueStateExchange() { outbox_.push_back(OutStateExchange{}); }
  // Deadlines, resends and the ACK due (resends wait for the broker).
  void Timers(TimePoint now);
  // The earliest timer of the operations (at most `next`).
  TimePoint NextWakeup(TimePoint next) const;
  // After the turn's commit: queued REQUESTs and control messages leave.
  // `linked`: a connection exists (without one everything is dropped;
  // the state exchange after the next WELCOME recovers it).
  void Flush(TimePoint now, bool linked);
  // Pops resend timers of answered (or rescheduled) calls off the top of
  // the heap, so NextWakeup() does not wake the loop for them.
  void DropStaleResendTimers();
  bool WantsToSend() const { return conn_.welcomed() && !send_queue_.empty(); }

  // --- Failures -----------------------------------------------------------
  // The journal failed: nothing may leave any more; every waiter fails.
  void JournalFailed(const Status& s);
  bool journal_ok() const { return journal_ok_; }
  // Fails every waiter (the operations stay journaled).
  void FailAllWaiters(ErrorCode code, const char* why);

  // --- Outputs, taken by the caller after the commit ------------------------
  Deliveries& deliveries() { return deliveries_; }
  std::vector<RecoveryEvent>& events() { return events_; }
  // Slots of max_outstanding given back since the last call.
  std::uint32_t TakeSlotsFreed() { return std::exchange(slots_freed_, 0); }
  // Whether any of the three above waits to be taken.
  bool HasOutput() const {
    return !deliveries_.empty() || !events_.empty() || slots_freed_ > 0;
  }

  // --- State --------------------------------------------------------------
  std::size_t pending_count() const { return pending_.size(); }
  bool has_pending() const { return !pending_.empty(); }
  Seq next_seq() const { return next_seq_; }
  ClientVector BuildVector(const std::vector<Seq>* only) const;

 private:
  void HandleResponse(const Response& r, std::string_view payload,
                      TimePoint now);
  void Complete(Seq seq, ErrorCode status, std::string payload, TimePoint now);
  void HandleRecover(const Recover& r);
  void HandleProbe(const Probe& p);
  // Sweeps stale entries out of the timer heaps when they dominate.
  void PruneTimers();
  bool SendNow(const Message& m);
  // Sends the first kSendBatch queued requests as one batch; false (nothing
  // sent, all still queued) when the socket would block.
  bool SendRequestBatch(TimePoint now);
  // Adds the REQUEST for `item` to the wire's batch; false if it cannot be
  // encoded.
  bool AddRequest(const SendItem& item, Seq watermark);
  void ScheduleResend(Seq seq, PendingOp& op, TimePoint now);
  // Raises the next seq above `seen`, a seq the broker named that this
  // journal never issued (PROTOCOL.md §1.2).
  void SkipPast(Seq seen);
  Seq Watermark() const;
  // The broker was told of everything below `watermark` and of `seqs`
  // (sorted): stop acknowledging them, and forget those delivered.
  void NoteAcked(Seq watermark, const std::vector<Seq>& seqs);
  void HintLosses(std::uint64_t answered_order, TimePoint now);
  void NoteSend(Seq seq, PendingOp& op);
  // The send `order` no longer waits for an answer (answered, sent again).
  void RetireSend(std::uint64_t order);

  const ClientOptions& options_;
  SessionRecords& records_;
  const EndpointMachine& conn_;
  const Incarnation incarnation_;
  const JournalId journal_id_;
  AtomicStats& stats_;
  SessionWire& wire_;
  const std::function<void(Seq)> skipped_;

  std::map<Seq, PendingOp> pending_;
  Seq next_seq_ = 1;
  std::deque<SendItem> send_queue_;
  std::vector<bool> batch_added_;  // SendRequestBatch's scratch
  std::vector<OutItem> outbox_;
  // Completions journaled this turn, delivered after the commit.
  Deliveries deliveries_;
  std::vector<RecoveryEvent> events_;
  std::uint32_t slots_freed_ = 0;
  // False once a commit failed: the journal is unusable and nothing may
  // leave any more (journal_status_ says why).
  bool journal_ok_ = true;
  Status journal_status_;
  // Completed seqs the broker has not been told about (by ACK or a
  // watermark above them).
  SeqSet unacked_;
  TimePoint ack_due_;
  // Completed seqs delivered to their caller, to be dropped from the
  // journal once acknowledged (ClientOptions::keep_completed off).
  SeqSet forget_when_acked_;
  // Completed seqs dropped from the journal while still above the
  // watermark: the state vector keeps reporting them as completed.
  std::set<Seq> forgotten_above_wm_;
  TimerHeap resend_timers_;
  TimerHeap deadline_timers_;
  std::uint64_t next_waiter_id_ = 1;
  // When to presume a request or its answer lost (rtt_estimator.h).
  RttEstimator rtt_;
  // Recently completed resent seqs: a second answer to one of them shows
  // that the resend was needless.
  std::unordered_set<Seq> recently_resent_;
  std::deque<Seq> recently_resent_order_;
  std::uint64_t send_counter_ = 0;
  // Every send, oldest first, for HintLosses: sends_[i] is send order
  // sends_base_ + i, live until answered or sent again. Retired entries are
  // dropped when they reach the front; answers mark them by index, so the
  // loss hint looks an operation up only when it may have been lost.
  struct SendEntry {
    Seq seq = 0;
    bool live = true;
  };
  std::deque<SendEntry> sends_;
  std::uint64_t sends_base_ = 1;
  // How many later sends answered make an unanswered one presumed lost.
  ReorderSlack reorder_;
};

}  // namespace rejoin::client_internal
