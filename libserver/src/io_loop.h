// The server's I/O thread: the shell around the ServerCore (server_core.h).
// It owns the broker link and the journal, feeds the core the operations'
// messages and the WorkerPool's completions, and keeps the turn discipline:
// all records of one loop turn are committed once, then that turn's messages
// are sent and its handlers started.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "counters.h"
#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "rejoin/server/server.h"
#include "rejoin/transport/link.h"
#include "server_core.h"
#include "worker_pool.h"

namespace rejoin::server_internal {

using transport::Link;

// The connection's timers (FLOWS.md §1): the defaults, with the heartbeat
// the options give until a WELCOME names one.
EndpointTimers LinkTimers(std::chrono::milliseconds heartbeat);

class IoLoop {
 public:
  // Everything passed by reference must outlive the loop. `link` may be null
  // (the loop then connects on its first turn).
  IoLoop(const ServerOptions& options,
         const std::vector<ServiceOptions>& services,
         std::unique_ptr<Journal> journal, std::unique_ptr<Link> link,
         zmq::context_t& context, WorkerPool& pool, Counters& counters);
  ~IoLoop();
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  // Runs on the I/O thread until `stop` is set and every handler started so
  // far has been answered; then says GOODBYE and closes the link. The caller
  // wakes the loop (WorkerPool::Wake) after setting `stop`.
  void Run(const std::atomic<bool>& stop);

 private:
  using Clock = std::chrono::steady_clock;

  // One pass of the loop; true when the loop is over.
  bool Step(const std::atomic<bool>& stop);
  void Poll(Clock::time_point now);
  void Turn(Clock::time_point now);
  void Leave(Clock::time_point now);
  void OnZmqError(const zmq::error_t& e);
  // The link failed: drop it and reconnect after a pause.
  void OnLinkError(const std::string& what);

  // Connection (connection.cpp): the life cycle is conn_'s; these feed it
  // and carry out what it asks.
  EndpointMachine::Input LinkInput(EndpointEvent event,
                                   Clock::time_point now) const;
  void Drive(EndpointEvent event, Clock::time_point now);
  void Carry(const EndpointMachine::Output& out, Clock::time_point now);
  void HandleLinkEvents(Clock::time_point now);
  void ReadMessages(Clock::time_point now);
  void Timers(Clock::time_point now);
  void OpenLink(Clock::time_point now);
  void SendHello(Clock::time_point now);
  void Send(const Message& m, zmq::message_t* payload, Clock::time_point now);
  // Books a send's result; false when the link closed (it is dropped).
  bool Sent(transport::SendResult result, Clock::time_point now);
  // Commits the turn's records, then sends its messages and starts its jobs.
  void Flush(Clock::time_point now);
  // Sends outbox_ (or drops it before WELCOME) and empties it.
  void SendOutbox(Clock::time_point now);
  void Fail(const Status& status);

  // Messages from the broker: the connection's here, the operations' to
  // core_.
  void Dispatch(Message& m, std::string_view payload, Clock::time_point now);
  void OnWelcome(const Welcome& w, Clock::time_point now);
  void OnHeartbeat(const Heartbeat& h, Clock::time_point now);
  void OnError(const Error& e, Clock::time_point now);
  // Handles every completion waiting; true when there was any.
  bool TakeCompletions();
  // The core found the journal failing: stop as Fail() says.
  void CheckCore();
  bool LogOnce(const std::string& key);

  // The core's messages go into the turn's batch.
  class BatchOutbox final : public Outbox {
   public:
    explicit BatchOutbox(transport::Batch& batch) : batch_(batch) {}
    void Add(const Message& m, std::string_view payload) override {
      batch_.Add(m, payload);
    }

   private:
    transport::Batch& batch_;
  };

  const ServerOptions& options_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Link> link_;
  zmq::context_t& context_;
  WorkerPool& pool_;
  bool pool_ready_ = false;  // the last poll found the pool's fd readable
  std::vector<Completion> completions_;  // reused by TakeCompletions
  Counters& counters_;
  const Incarnation incarnation_;

  // Work of the current turn, held back until its records are committed.
  // Encoded as queued, sent after the commit; keeps its buffer between turns.
  transport::Batch outbox_;
  BatchOutbox core_outbox_{outbox_};
  // The operations (server_core.h): their records, answers and jobs.
  ServerCore core_;

  // The connection life cycle (FLOWS.md §1.1): welcomed, returning, the
  // broker's epoch and heartbeat, HELLO and relink timers.
  EndpointMachine conn_;
  Clock::time_point last_sent_;
  Clock::time_point last_heard_;

  std::size_t outstanding_ = 0;  // jobs submitted, completion not yet taken
  bool failed_ = false;          // the journal failed: nothing may leave
  std::set<std::string> logged_;
};

}  // namespace rejoin::server_internal
