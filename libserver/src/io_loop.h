// The server's I/O thread: the server side of libproto/FLOWS.md. It owns the
// broker link and the journal, hands handler work to the WorkerPool, and
// journals every state change before the message describing it leaves: all
// records of one loop turn are committed once, then that turn's messages are
// sent and its handlers started.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "counters.h"
#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "rejoin/server/server.h"
#include "rejoin/transport/link.h"
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

  // Messages from the broker.
  void Dispatch(Message& m, std::string_view payload, Clock::time_point now);
  void OnWelcome(const Welcome& w, Clock::time_point now);
  void OnRequest(const Request& r, std::string_view request);
  void OnAck(const Ack& a);
  void OnProbe(const Probe& p);
  void OnRecover(const Recover& r);
  void OnHeartbeat(const Heartbeat& h, Clock::time_point now);
  void OnError(const Error& e, Clock::time_point now);
  void OnCompletion(Completion c);
  // Handles every completion waiting; true when there was any.
  bool TakeCompletions();
  void ApplyDecision(const SessionId& session, const OpDecision& d);

  // Operations.
  void QueueStateExchange();
  ServerVector VectorOf(const SessionId& session, const JournalSession* js,
                        const std::vector<Seq>* only) const;
  // What to do with an operation found RECEIVED by an older incarnation when
  // its request arrives again: the service's policy.
  Action InDoubtAction(const std::string& service) const;
  void SettleInDoubt(const SessionId& session, Seq seq, Action action);
  // Journals EXECUTED with `reply` (and the request's digest, when known)
  // and queues the RESPONSE.
  void Execute(const SessionId& session, Seq seq,
               std::optional<std::uint64_t> digest, HandlerReply reply);
  // Answers `in_doubt` for a released seq, without a record.
  void AnswerReleased(const SessionId& session, Seq seq);
  // The digest of the request an op holds; nullopt when not known.
  std::optional<std::uint64_t> DigestOf(const JournalOp& op) const;
  void ResendStored(const SessionId& session, Seq seq, const JournalOp& op);
  void QueueResponse(const SessionId& session, Seq seq, ErrorCode status,
                     std::string_view payload);
  void ReleaseBelow(const SessionId& session, Seq below);
  void Release(const SessionId& session, Seq below,
               const std::vector<Seq>& seqs);

  const JournalSession* FindSession(const SessionId& session) const;
  const JournalOp* FindOp(const SessionId& session, Seq seq) const;
  bool IsReleased(const SessionId& session, Seq seq) const;
  bool LogOnce(const std::string& key);

  // Session expiry (PROTOCOL.md §6.3): a message about `session` arrived.
  void Touch(const SessionId& session);
  // Releases every session idle for ServerOptions::session_expiry with no
  // handler running; looks at most once per kExpiryCheck.
  void ExpireSessions(Clock::time_point now);

  const ServerOptions& options_;
  const std::vector<ServiceOptions>& services_;
  std::unordered_map<std::string, std::size_t> service_index_;
  std::vector<ServiceSpec> specs_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Link> link_;
  zmq::context_t& context_;
  WorkerPool& pool_;
  bool pool_ready_ = false;  // the last poll found the pool's fd readable
  std::vector<Completion> completions_;  // reused by TakeCompletions
  Counters& counters_;
  const Incarnation incarnation_;

  // The connection life cycle (FLOWS.md §1.1): welcomed, returning, the
  // broker's epoch and heartbeat, HELLO and relink timers.
  EndpointMachine conn_;
  Clock::time_point last_sent_;
  Clock::time_point last_heard_;

  // Work of the current turn, held back until its records are committed.
  // Encoded as queued, sent after the commit; keeps its buffer between turns.
  transport::Batch outbox_;
  std::vector<Job> jobs_;
  std::size_t outstanding_ = 0;  // jobs submitted, completion not yet taken
  bool draining_ = false;        // stopping: no new handler work
  bool failed_ = false;          // the journal failed: nothing may leave
  std::set<std::string> logged_;

  // When a message about each session last arrived; sessions missing here
  // count from started_.
  std::unordered_map<SessionId, Clock::time_point> session_seen_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point turn_now_ = started_;  // the current turn's time
  Clock::time_point next_expiry_check_ = started_;
};

}  // namespace rejoin::server_internal
