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
#include "rejoin/transport/wire.h"
#include "session_core.h"
#include "session_journal.h"

namespace rejoin {

namespace client_internal {

class Hub;

// The connection's timers (FLOWS.md §1): the defaults, with the heartbeat
// the options give until a WELCOME names one.
inline EndpointTimers LinkTimers(std::chrono::milliseconds heartbeat) {
  EndpointTimers timers;
  timers.heartbeat = heartbeat;
  return timers;
}
// Wake-ups closer than this use the timerfd (precise_timer.h).
inline constexpr std::chrono::milliseconds kPreciseWakeup{3};
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

// The session's messages go out on the hub's connection; its REQUESTs in
// one transport::Batch per send.
class HubWire final : public SessionWire {
 public:
  explicit HubWire(Hub& hub) : hub_(hub) {}
  bool Send(const Message& m) override;
  void AddRequest(const Request& r, std::string_view payload) override;
  bool SendRequests() override;
  void ClearRequests() override { batch_.Clear(); }

 private:
  Hub& hub_;
  transport::Batch batch_;  // reused: keeps its capacity
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

  // --- Under the hub's loop lock (io_loop.cpp, commands.cpp,
  // session_link.cpp): the hub's thread, or a caller in Hub::SendOnCaller --
  // Admitted to the hub: say HELLO.
  void Start();
  // Detached from the hub: commit, say GOODBYE, fail the waiters.
  void Shutdown();
  // The connection's monitor reported a handshake or a disconnect.
  void OnLinkEvent(transport::Link::Event e);
  // The hub replaced the connection.
  void OnLinkReopened(const char* why);
  // Requests wait for the socket to take them (POLLOUT wanted).
  bool WantsToSend() const { return core_.WantsToSend(); }
  // After Hub::SendOnCaller ran this session's commands: whether the loop
  // has work from them (outcomes or replies to hand out on its thread,
  // requests the socket did not take).
  bool HasWorkForLoop() const {
    return core_.HasOutput() || !forget_replies_.empty() || WantsToSend();
  }
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
  void HandleMessage(Message& m, std::string_view payload);
  void HandleWelcome(const Welcome& w);
  void HandleError(const Error& e);
  void HandleTimers(TimePoint now);
  // At window 1 every answered call would otherwise cost a wake-up at its
  // old resend time (SessionCore::DropStaleResendTimers).
  void DropStaleResendTimers() { core_.DropStaleResendTimers(); }
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
  bool SendNow(const Message& m);
  // Fenced or not authorized, the session is shut out until the broker
  // admits it: its calls stay journaled (and go out once it is admitted),
  // but their callers learn it now rather than at their deadlines.
  void FailWaitersIfShutOut();
  // The core saw a seq above any this journal issued: seqs handed out from
  // now on start at `next` (PROTOCOL.md §1.2).
  void SkipTo(Seq next);
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
  client_internal::HubWire wire_;
  // The connection life cycle (FLOWS.md §1.1): welcomed, returning, the
  // broker's epoch and heartbeat, and the HELLO timers.
  EndpointMachine conn_;
  // The operations (session_core.h): their records, answers, resends.
  client_internal::SessionCore core_;
  // Deliver()'s buffer, trading places with the core's every turn.
  client_internal::SessionCore::Deliveries delivering_;
  std::vector<std::pair<std::shared_ptr<std::promise<Status>>, Status>>
      forget_replies_;
  std::shared_ptr<const std::function<void(const RecoveryEvent&)>>
      io_recovery_cb_;
  bool logged_malformed_ = false;
  // The broker's words on the last HELLO it refused as not authorized.
  std::string denied_why_;
};

}  // namespace rejoin
