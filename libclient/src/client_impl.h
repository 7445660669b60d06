// Client::Impl: the shared state between application threads and the I/O
// thread. Application threads only assign seqs and queue commands under
// `mutex_`; the I/O thread alone touches the socket, the journal and the
// operation table (everything below "I/O thread state").
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "rejoin/client/client.h"
#include "rejoin/client/connection.h"
#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "rejoin/proto/state_vector.h"
#include "rejoin/transport/link.h"
#include "reorder_slack.h"
#include "rtt_estimator.h"
#include "seq_set.h"
#include "session_journal.h"

namespace rejoin {

namespace client_internal {

class Hub;

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Longest wait between resends of one operation (FLOWS.md §1).
inline constexpr std::chrono::milliseconds kMaxResendDelay{2000};
// How many completed-after-resend seqs are remembered for that detection.
inline constexpr std::size_t kRecentResends = 1024;
// Sends remembered for the loss hint at most (client_impl.h sends_).
inline constexpr std::size_t kMaxTrackedSends = std::size_t{1} << 16;
// Below that many calls in flight the resend timer does the detecting.
static_assert(ReorderSlack::kMax == RttEstimator::kFewInFlight);
// Completions above the watermark are acknowledged after this, or at once
// when kAckBatch of them wait (FLOWS.md §6).
inline constexpr std::chrono::milliseconds kAckDelay{20};
inline constexpr std::size_t kAckBatch = 1024;
// The connection's timers (FLOWS.md §1): the defaults, with the heartbeat
// the options give until a WELCOME names one.
inline EndpointTimers LinkTimers(std::chrono::milliseconds heartbeat) {
  EndpointTimers timers;
  timers.heartbeat = heartbeat;
  return timers;
}
// Wake-ups closer than this use the timerfd (precise_timer.h).
inline constexpr std::chrono::milliseconds kPreciseWakeup{3};
// Requests sent together in one ZeroMQ message (transport::Batch).
inline constexpr std::size_t kSendBatch = 256;
// Inbound messages handled per loop turn, so that a flood cannot postpone
// the commit and the deliveries of what was already read.
inline constexpr int kReadBudget = 4096;

struct CallCommand {
  Seq seq = 0;
  std::string service;
  std::string payload;
  Client::Callback callback;
  TimePoint deadline;
};
struct CollectCommand {
  Seq seq = 0;
  Client::Callback callback;
  TimePoint deadline;
};
struct ForgetCommand {
  Seq seq = 0;
  std::shared_ptr<std::promise<Status>> done;
};
struct ListCommand {
  std::shared_ptr<std::promise<std::vector<OperationInfo>>> done;
};
using Command =
    std::variant<CallCommand, CollectCommand, ForgetCommand, ListCommand>;

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
};

}  // namespace client_internal

class Client::Impl {
 public:
  using TimePoint = client_internal::TimePoint;

  static Result<std::unique_ptr<Impl>> Create(ClientOptions options);
  ~Impl();

  Result<Seq> CallAsync(std::string_view service, std::string_view payload,
                        Callback callback, std::chrono::milliseconds deadline);
  Result<Reply> Call(std::string_view service, std::string_view payload,
                     std::chrono::milliseconds deadline);
  std::vector<OperationInfo> ListOperations();
  Result<Reply> Collect(Seq seq, std::chrono::milliseconds deadline);
  Status CollectAsync(Seq seq, Client::Callback callback,
                      std::chrono::milliseconds deadline);
  Status Forget(Seq seq);
  void SetRecoveryCallback(std::function<void(const RecoveryEvent&)> cb);
  ClientStats stats() const;
  const std::string& session_id() const { return options_.session_id; }
  Incarnation incarnation() const { return incarnation_; }

 private:
  friend class client_internal::Hub;
  Impl(ClientOptions options,
       std::unique_ptr<client_internal::SessionJournal> journal,
       std::shared_ptr<client_internal::Hub> hub);

  // --- Application side -------------------------------------------------
  TimePoint DeadlineFrom(std::chrono::milliseconds deadline) const;
  // Queues a command and wakes the I/O thread if it sleeps. Caller holds
  // `lock`; it is released before the wakeup write.
  void Enqueue(std::unique_lock<std::mutex>& lock, client_internal::Command c);
  // Assigns a seq and queues the call; caller holds `lock` and has checked
  // the outstanding limit.
  Seq IssueLocked(std::unique_lock<std::mutex>& lock, std::string_view service,
                  std::string_view payload, Callback callback,
                  TimePoint deadline);
  bool OnIoThread() const;

  // --- I/O thread (io_loop.cpp, commands.cpp, send_path.cpp,
  // session_link.cpp), called by the hub (hub.h) --------------------------
  // Admitted to the hub: say HELLO.
  void Start();
  // Detached from the hub: commit, say GOODBYE, fail the waiters.
  void Shutdown();
  // The connection's monitor reported a handshake or a disconnect.
  void OnLinkEvent(transport::Link::Event e);
  // The hub replaced the connection.
  void OnLinkReopened(const char* why);
  // Requests wait for the socket to take them (POLLOUT wanted).
  bool WantsToSend() const { return conn_.welcomed() && !send_queue_.empty(); }
  // Commits wait for fdatasync (Durability::kSync).
  bool SyncsCommits() const {
    return journal_->durability() == Durability::kSync;
  }
  void CountMalformed() {
    stats_.malformed.fetch_add(1, std::memory_order_relaxed);
  }
  // Turn phases.
  void TakeAndHandleCommands();
  void Compact();
  void TakeCommands(std::vector<client_internal::Command>& out);
  void HandleCommand(client_internal::Command& c);
  void HandleCall(client_internal::CallCommand& c);
  void HandleCollect(client_internal::CollectCommand& c);
  void HandleForget(client_internal::ForgetCommand& c);
  Status ForgetSeq(Seq seq);
  std::vector<OperationInfo> ListFromJournal() const;
  void HandleMessage(Message& m, std::string_view payload);
  void HandleWelcome(const Welcome& w);
  void HandleResponse(const Response& r, std::string_view payload);
  void HandleError(const Error& e);
  void HandleRecover(const Recover& r);
  void HandleProbe(const Probe& p);
  void HandleTimers(TimePoint now);
  // Sweeps stale entries out of the timer heaps when they dominate.
  void PruneTimers();
  // Pops resend timers of answered (or rescheduled) calls off the top of the
  // heap, so NextWakeup() does not wake the hub for them: at window 1 every
  // answered call would otherwise cost a wake-up at its old resend time.
  void DropStaleResendTimers();
  void Commit();
  void Flush(TimePoint now);
  void Deliver();
  // The connection life cycle (session_link.cpp): feeds the state machine
  // and carries out what it asks. `why` overrides the machine's reason for
  // a reported loss.
  void Drive(EndpointEvent event, TimePoint now, const char* why = nullptr);
  void Carry(const EndpointMachine::Output& out, TimePoint now,
             const char* why);
  EndpointMachine::Input LinkInput(EndpointEvent event, TimePoint now) const;
  // The turn's timer step of the life cycle (heartbeat, silence, HELLO).
  void ConnectionTimers(TimePoint now);
  void SendHello(TimePoint now);
  // Helpers.
  bool SendNow(const Message& m, zmq::message_t* payload = nullptr);
  // Sends the first kSendBatch queued requests as one batch; false (nothing
  // sent, all still queued) when the socket would block.
  bool SendRequestBatch(TimePoint now);
  // Adds the REQUEST for `item` to `batch`; false if it cannot be encoded.
  bool AddRequest(transport::Batch& batch,
                  const client_internal::SendItem& item, Seq watermark);
  void ScheduleResend(Seq seq, client_internal::PendingOp& op, TimePoint now);
  void Complete(Seq seq, ErrorCode status, std::string payload, TimePoint now);
  void FailAllWaiters(ErrorCode code, const char* why);
  // Fenced or not authorized, the session is shut out until the broker
  // admits it: its calls stay journaled (and go out once it is admitted),
  // but their callers learn it now rather than at their deadlines.
  void FailWaitersIfShutOut();
  void Emit(RecoveryEventKind kind, Seq seq);
  // Raises both next seqs above `seen`, a seq the broker named that this
  // journal never issued (PROTOCOL.md §1.2).
  void SkipPast(Seq seen);
  Seq Watermark() const;
  ClientVector BuildVector(const std::vector<Seq>* only) const;
  // The broker was told of everything below `watermark` and of `seqs`
  // (sorted): stop acknowledging them, and forget those delivered.
  void NoteAcked(Seq watermark, const std::vector<Seq>& seqs);
  // The earliest timer of the I/O thread (at most a second ahead).
  TimePoint NextWakeup(TimePoint now) const;

  const ClientOptions options_;
  const Incarnation incarnation_;
  const JournalId journal_id_;

  // --- Shared with application threads, under mutex_ ----------------------
  mutable std::mutex mutex_;
  std::condition_variable slot_cv_;
  std::vector<client_internal::Command> queue_;
  Seq next_seq_ = 1;
  std::uint32_t outstanding_ = 0;
  std::uint32_t limit_ = 0;
  bool closing_ = false;
  Status failed_;  // set when the journal becomes unusable
  std::shared_ptr<const std::function<void(const RecoveryEvent&)>> recovery_cb_;
  client_internal::AtomicStats stats_;
  // Set when commands wait for the hub (Hub::Notify), cleared when it takes
  // them.
  std::atomic<bool> notified_{false};

  // --- I/O thread state ---------------------------------------------------
  // The commands of the turn (trades places with queue_).
  std::vector<client_internal::Command> taken_commands_;
  std::unique_ptr<client_internal::SessionJournal> journal_;
  // The connection and I/O thread, private or shared (ClientConnection).
  std::shared_ptr<client_internal::Hub> hub_;
  std::map<Seq, client_internal::PendingOp> pending_;
  Seq io_next_seq_ = 1;
  std::deque<client_internal::SendItem> send_queue_;
  std::vector<bool> batch_added_;  // SendRequestBatch's scratch
  std::vector<client_internal::OutItem> outbox_;
  // Completions journaled this turn, delivered after the commit.
  std::vector<std::pair<Client::Callback, Result<Reply>>> deliveries_;
  std::vector<std::pair<Client::Callback, Result<Reply>>> delivering_;
  transport::Batch request_batch_;
  std::vector<std::pair<std::shared_ptr<std::promise<Status>>, Status>>
      forget_replies_;
  // Slots of max_outstanding given back this turn (returned in Deliver).
  std::uint32_t slots_freed_ = 0;
  // False once a commit failed: the journal is unusable and nothing may
  // leave any more (journal_status_ says why).
  bool failed_ok_ = true;
  Status journal_status_;
  // Completed seqs the broker has not been told about (by ACK or a
  // watermark above them).
  client_internal::SeqSet unacked_;
  TimePoint ack_due_;
  // Completed seqs delivered to their caller, to be dropped from the
  // journal once acknowledged (ClientOptions::keep_completed off).
  client_internal::SeqSet forget_when_acked_;
  // Completed seqs dropped from the journal while still above the
  // watermark: the state vector keeps reporting them as completed.
  std::set<Seq> forgotten_above_wm_;
  client_internal::TimerHeap resend_timers_;
  // When to presume a request or its answer lost (rtt_estimator.h).
  client_internal::RttEstimator rtt_;
  // Recently completed resent seqs: a second answer to one of them shows
  // that the resend was needless.
  std::unordered_set<Seq> recently_resent_;
  std::deque<Seq> recently_resent_order_;
  void HintLosses(std::uint64_t answered_order, TimePoint now);
  void NoteSend(Seq seq, client_internal::PendingOp& op);
  // The send `order` no longer waits for an answer (answered, sent again).
  void RetireSend(std::uint64_t order);
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
  client_internal::ReorderSlack reorder_;
  client_internal::TimerHeap deadline_timers_;
  std::uint64_t next_waiter_id_ = 1;
  std::shared_ptr<const std::function<void(const RecoveryEvent&)>>
      io_recovery_cb_;
  std::vector<RecoveryEvent> events_;  // delivered after the commit
  bool logged_malformed_ = false;
  // The broker's words on the last HELLO it refused as not authorized.
  std::string denied_why_;

  // The connection life cycle (FLOWS.md §1.1): welcomed, returning, the
  // broker's epoch and heartbeat, and the HELLO timers.
  EndpointMachine conn_;
};

}  // namespace rejoin
