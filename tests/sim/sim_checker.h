// The independent checker: a history of what the application saw and what
// handlers did, recorded by the simulator outside the parties' code (calls
// accepted, handler executions with their side effects, answers delivered,
// hellos and welcomes seen on the wire), and the invariants checked against
// it during and after a run. It knows nothing of journals or of the broker's
// tables beyond what the run hands it at the end.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin::sim {

struct Violation {
  std::string invariant;
  std::uint32_t client = 0;  // the session's client + 1; 0: none
  Seq seq = 0;
  std::string detail;
};

class Checker {
 public:
  Checker(int clients, int servers);

  // ---- history -------------------------------------------------------
  void Attempted(int client, Seq seq, const std::string& service,
                 const std::string& payload);
  void Accepted(int client, Seq seq);
  // A handler ran with its side effect; `idempotent` as the service says.
  void Executed(int server, int client, Seq seq, bool idempotent,
                ErrorCode status, const std::string& result,
                std::int64_t now_us);
  // A server took the call on: its RECEIVED record was committed.
  void Received(int server, int client, Seq seq, std::int64_t now_us);
  void Delivered(int client, Seq seq, ErrorCode status,
                 const std::string& payload, std::int64_t now_us);
  // The party's journal directory was wiped: what it remembered is gone.
  void ClientJournalLost(int client);
  void ServerJournalLost(int server);
  // The client's process will never come back.
  void ClientGone(int client);
  // HELLO and WELCOME as they cross the wire (fencing: an older incarnation
  // of a journal must never be welcomed once a newer one was).
  void HelloSent(const std::string& route, const std::string& id,
                 Incarnation incarnation, JournalId journal);
  void WelcomeSent(const std::string& route, const std::string& id);
  // A new broker knows no incarnation yet, and waits `grace_us` for the
  // servers to report (PROTOCOL.md §6.5).
  void BrokerStarted(std::int64_t now_us, std::int64_t grace_us);
  // The broker's grace period ended (it may run past `grace_us` while a
  // welcomed server has not reported); an end before `grace_us` counts as
  // `grace_us`.
  void GraceEnded(std::int64_t now_us);
  // A server's report (STATE_EXCHANGE with `last`) reached the broker.
  void ServerReported(int server, std::int64_t now_us);
  // A violation found by the run itself (write-ahead, journal open).
  void Fail(const std::string& invariant, int client, Seq seq,
            std::string detail);

  // ---- end of run ----------------------------------------------------
  // Every accepted call of a client that is still there and kept its
  // journal was answered.
  void CheckAllAnswered();
  // `what` is over its idle bound.
  void MemoryOver(const std::string& what, std::uint64_t value,
                  std::uint64_t bound);

  const std::vector<Violation>& violations() const { return violations_; }
  bool ok() const { return violations_.empty(); }
  // Calls accepted whose answer has not come yet (for the run's end test).
  std::uint64_t outstanding() const { return outstanding_; }
  std::uint64_t answered() const { return answered_; }
  std::uint64_t executions() const { return executions_; }
  std::uint64_t in_doubt() const { return in_doubt_; }
  // Second executions of a non-idempotent call that the protocol's timing
  // assumption allows: the server that ran it first had not reported to a
  // restarted broker within the grace period.
  std::uint64_t grace_misses() const { return grace_misses_; }

 private:
  // A copy taken at early_server at early_taken, before a broker start,
  // and another taken at late_taken, after that broker's grace period, with
  // early_server not reported to it within the grace period.
  bool GraceMissed(int early_server, std::int64_t early_taken,
                   std::int64_t late_taken) const;
  struct Exec {
    int server;
    std::int64_t at_us;
    ErrorCode status;
    std::string result;
    bool forgotten;  // its server's journal was lost since
  };
  struct Call {
    std::string service;
    std::string payload;
    bool accepted = false;
    bool answered = false;
    bool exempt = false;  // the client's journal was lost before an answer
    std::vector<Exec> execs;
    std::map<int, std::int64_t> received_at;  // server -> first time
  };
  Call* Find(int client, Seq seq);
  // A later execution of the call, whose server has lost its journal since,
  // took `e`'s place: it ran only because `e`'s copy was missed across a
  // broker restart (or it would have been reported), and the servers then
  // dropped `e`'s record as answered elsewhere. With that answer's journal
  // wiped, nothing is left that says the call ran.
  static bool Superseded(const Call& c, const Exec& e);
  // Nothing the system kept can tell that `e` ran: its server lost its
  // journal, or `e` was superseded (counted as a grace miss).
  bool Untraceable(const Call& c, const Exec& e);
  // When `e`'s server took the call on (its RECEIVED commit), or when `e`
  // ran if the receipt is not known.
  static std::int64_t TakenAt(const Call& c, const Exec& e);

  std::vector<std::map<Seq, Call>> calls_;  // by client
  std::vector<bool> gone_;
  // id -> journal id -> highest incarnation welcomed.
  std::unordered_map<std::string, std::map<JournalId, Incarnation>> welcomed_;
  // route -> the HELLO last sent on it (id, incarnation, journal).
  struct HelloSeen {
    std::string id;
    Incarnation incarnation;
    JournalId journal;
  };
  std::unordered_map<std::string, std::vector<HelloSeen>> hellos_;
  std::vector<Violation> violations_;
  std::uint64_t outstanding_ = 0;
  std::uint64_t answered_ = 0;
  std::uint64_t executions_ = 0;
  std::uint64_t in_doubt_ = 0;
  std::uint64_t grace_misses_ = 0;
  // Each broker's life: when it started, and when each server's report
  // reached it (-1: never).
  struct BrokerLife {
    std::int64_t start_us;
    std::int64_t grace_end_us;  // start + G, or later (GraceEnded)
    std::vector<std::int64_t> reported_at;
  };
  std::vector<BrokerLife> brokers_;
  int servers_ = 0;
};

}  // namespace rejoin::sim
