// Hub: the I/O thread and the broker connection that one or more Client
// sessions share (ClientConnection, or a Client's private one).
//
// The hub owns the socket (transport::Link), the wake-up eventfd and the
// precise timer, and runs the loop; each session (Client::Impl, a "member")
// keeps its own operations, journal and admission state. A loop turn runs
// every phase for all members before the next phase (io_loop.cpp), so that
// members on one SharedJournal commit what they all appended in one write.
//
// Connection-level duties live here: reading and routing inbound messages to
// the session they name, the monitor's connect/disconnect events (handed to
// every member), the times of the last send and receive that the members'
// connection state machines judge heartbeats and silence by (per
// connection, as the broker judges liveness per connection).
//
// Threads: Attach, Detach, Notify and SendOnCaller are called by
// application threads; everything else runs under the loop lock
// (`loop_mutex_`), which the hub's thread holds except while it sleeps in
// poll. SendOnCaller takes it then, so that a call made while the loop
// sleeps is journaled and sent on the caller's thread instead of waking the
// loop for it (one thread hand-off less on a synchronous call's path).
// `mutex_` guards the lists that cross threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "precise_timer.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/messages.h"
#include "rejoin/transport/link.h"

namespace rejoin::client_internal {

class Hub {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // Opens the link and starts the thread.
  // With `curve` enabled, the connection speaks CurveZMQ with its keys
  // (read here: a bad key file fails Start).
  static Result<std::shared_ptr<Hub>> Start(const std::string& endpoint,
                                            const CurveOptions& curve = {});
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // --- Application threads ----------------------------------------------
  // Adds a member; the next turn admits it (it sends its HELLO). False when
  // a member with the same session id is attached already.
  bool Attach(Client::Impl* member);
  // Removes a member: the hub's thread runs its Shutdown and forgets it
  // before this returns. Must not be called on the hub's thread.
  void Detach(Client::Impl* member);
  // The member has queued commands: take them on the next turn, waking the
  // thread if it sleeps.
  void Notify(Client::Impl* member);
  // If the loop sleeps with nothing else to do, runs `member`'s queued
  // commands on the calling thread, commits and sends what they queued, and
  // returns true; false (nothing done) otherwise, and the caller Notifies.
  // Wakes the loop if what it did left the loop work (an outcome to
  // deliver, a message that arrived meanwhile, an earlier timer). Not for
  // members whose commits wait for fdatasync: their commits are grouped in
  // the loop's turn.
  bool SendOnCaller(Client::Impl* member);
  bool OnIoThread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }
  const std::string& endpoint() const { return endpoint_; }
  std::size_t sessions() const;

  // --- The hub's thread (members call these from their turn phases) -------
  // The connection, or nullptr between a failed reopen and the next.
  transport::Link* link() { return link_.get(); }
  // Sends on the link and notes the time; false if it did not leave.
  bool Send(const Message& m, zmq::message_t* payload = nullptr);
  bool Send(transport::Batch& batch);
  // Replaces the connection (a member's state machine asked for it); every
  // member hears of the new one (OnLinkReopened).
  void Reopen(const char* why);
  // When the messages being handled were read (to within 64 messages).
  TimePoint last_recv() const { return last_recv_; }
  // When the connection last sent anything.
  TimePoint last_send() const { return last_send_; }

 private:
  Hub(std::string endpoint, std::optional<transport::CurveKeys> curve);
  // Makes the thread's poll return (the eventfd).
  void Wake();
  Status OpenLink();
  void Run();
  bool RunTurn();
  // Sleeps in poll until a socket, the eventfd or the timer wakes the loop
  // or `timeout_ms` passes, with the loop lock released; false when the
  // socket's context is gone.
  bool Sleep(int timeout_ms, bool* monitor_ready);
  void ReadMonitor();
  void ReadInbound();
  void Route(Message& m, std::string_view payload);
  Client::Impl* MemberFor(const std::string& session) const;
  void HandleTimers(TimePoint now);
  TimePoint NextWakeup(TimePoint now) const;
  // Moves the members that queued commands (Notify) out of ready_ and
  // runs their commands.
  void TakeReady();
  void Admit(std::vector<Client::Impl*>& attached);
  void Release(std::vector<Client::Impl*>& detached);

  const std::string endpoint_;
  const std::optional<transport::CurveKeys> curve_;
  zmq::context_t context_{1};
  std::unique_ptr<transport::Link> link_;
  PreciseTimer timer_;
  int wake_fd_ = -1;
  std::thread thread_;

  // --- Shared with application threads, under mutex_ ----------------------
  mutable std::mutex mutex_;
  std::condition_variable detached_cv_;
  std::vector<Client::Impl*> ready_;
  std::vector<Client::Impl*> attaching_;
  std::vector<Client::Impl*> detaching_;
  std::vector<Client::Impl*> detached_;  // done; Detach waits for its own
  std::size_t sessions_ = 0;             // attached, not yet detached
  std::unordered_map<std::string, Client::Impl*> claimed_;  // by session id
  bool sleeping_ = false;
  bool stopping_ = false;

  // --- Under the loop lock (the hub's thread, or SendOnCaller) -------------
  std::mutex loop_mutex_;
  std::unique_lock<std::mutex> loop_lock_{loop_mutex_, std::defer_lock};
  // What the sleeping loop's poll waits for: its timeout, and whether it
  // waits for the socket to take messages.
  TimePoint sleep_until_;
  bool sleep_wants_out_ = false;
  std::vector<Client::Impl*> members_;
  std::size_t syncing_members_ = 0;  // of members_, with kSync journals
  std::unordered_map<std::string, Client::Impl*> by_session_;
  std::vector<Client::Impl*> turn_ready_;  // reused between turns
  TimePoint last_send_;
  TimePoint last_recv_;
  bool logged_malformed_ = false;
};

}  // namespace rejoin::client_internal
