// The server's operation logic without I/O (FLOWS.md §2-§7, server side):
// what a REQUEST, ACK, PROBE, RECOVER or a finished handler does to the
// journal, which messages answer it and which handler work it starts. It
// reads and writes only the journal it is given, queues messages into an
// Outbox and jobs into jobs(), and takes the time as an argument: the I/O
// loop (io_loop.h) and the simulation (tests/sim) run this same code. Every
// decision reads the journal's live state, never a cache of it, so what the
// server answers is what it would find again after a restart.
//
// The caller keeps the turn discipline: it commits the journal after a turn's
// calls, and only then sends what the Outbox holds and starts the jobs.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "counters.h"
#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "rejoin/server/server.h"
#include "worker_pool.h"

namespace rejoin::server_internal {

// Where the core's messages go until the turn's commit is done.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // `payload` follows when the type has a payload frame.
  virtual void Add(const Message& m, std::string_view payload) = 0;
};

// True when the journal holds an operation RECEIVED or EXECUTED: a server
// that starts with one has something to report (FLOWS.md §5).
bool HoldsOperations(const JournalState& state);

class ServerCore {
 public:
  using Clock = std::chrono::steady_clock;

  // Everything passed by reference must outlive the core. `started`: the
  // time sessions not heard from since count from (session expiry).
  ServerCore(const ServerOptions& options,
             const std::vector<ServiceOptions>& services, Journal& journal,
             Outbox& outbox, Counters& counters, Clock::time_point started);
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  // What HELLO announces.
  const std::vector<ServiceSpec>& specs() const { return specs_; }

  // Messages from the broker that concern operations; `now` is the turn's
  // time.
  void OnRequest(const Request& r, std::string_view request,
                 Clock::time_point now);
  void OnAck(const Ack& a, Clock::time_point now);
  void OnProbe(const Probe& p, Clock::time_point now);
  void OnRecover(const Recover& r, Clock::time_point now);
  // A handler or resolve hook finished.
  void OnCompletion(Completion c);
  // The server's vectors of every session, ending with a `last` message.
  void QueueStateExchange();
  // Releases every session idle for ServerOptions::session_expiry with no
  // handler running; looks at most once a second.
  void ExpireSessions(Clock::time_point now);
  // Leaving: no new handler work; what is in doubt stays for the next
  // incarnation.
  void Drain() { draining_ = true; }
  bool draining() const { return draining_; }

  // Handler work of the turn, to start after its commit. The caller takes
  // them and clears the vector.
  std::vector<Job>& jobs() { return jobs_; }
  // A journal write failed. From then on the core does nothing: the process
  // must not answer without a record and should be restarted.
  bool failed() const { return !failure_.ok(); }
  const Status& failure() const { return failure_; }

 private:
  void Fail(const Status& status);
  void ApplyDecision(const SessionId& session, const OpDecision& d);
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
  void Touch(const SessionId& session, Clock::time_point now);

  const ServerOptions& options_;
  const std::vector<ServiceOptions>& services_;
  std::unordered_map<std::string, std::size_t> service_index_;
  std::vector<ServiceSpec> specs_;
  Journal& journal_;
  Outbox& outbox_;
  Counters& counters_;
  const Incarnation incarnation_;

  std::vector<Job> jobs_;
  bool draining_ = false;
  Status failure_;
  std::set<std::string> logged_;

  // When a message about each session last arrived; sessions missing here
  // count from started_.
  std::unordered_map<SessionId, Clock::time_point> session_seen_;
  const Clock::time_point started_;
  Clock::time_point next_expiry_check_;
};

}  // namespace rejoin::server_internal
