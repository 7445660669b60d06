// What clients and servers of the simulation share: a process that can
// crash and restart, its journal on a FaultEnv of its own (the disk, which
// survives the process), its connection to the broker run by the real
// EndpointMachine, and the turn discipline of the libraries' I/O loops:
// everything a turn journals is committed once, before anything the turn
// sends leaves the process. Crash points sit between those steps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/messages.h"
#include "sim_world.h"
#include "support/fault_env.h"

namespace rejoin::sim {

// How a process stopped (trace).
enum class CrashHow : std::uint8_t {
  kBeforeSync = 1,    // records appended, commit not reached
  kAfterSync = 2,     // committed, the turn's messages not sent
  kInHandler = 3,     // a handler's side effect done, nothing journaled
  kDiskFailed = 4,    // the commit failed (ENOSPC / EIO): the process stops
  kAtRandom = 5,      // between turns
  kBroker = 6,        // between its turns
  kBrokerInTurn = 7,  // sending a turn's messages: only some left
  kInCompaction = 8,  // compacting its journal: stopped after some writes
};

class SimEndpoint {
 public:
  SimEndpoint(World& world, int party, Role role, std::string id);
  virtual ~SimEndpoint();

  int party() const { return party_; }
  bool alive() const { return alive_; }
  std::uint32_t life() const { return life_; }
  const std::string& id() const { return id_; }
  bool gone_for_good() const { return gone_for_good_; }
  Journal* journal() { return journal_.get(); }

  // The first start.
  void Start();
  void OnEvent(const Event& e);
  void OnPacket(std::uint64_t conn, const std::string& header,
                const std::string& payload);
  // The process stops now (the caller returns at once).
  void Crash(CrashHow how);
  // One line on the process's state, for a violation's report.
  std::string Describe() const;
  // The process will not come back.
  void MarkGone() { gone_for_good_ = true; }

 protected:
  // ---- the model's part -----------------------------------------------
  // After the journal opened at a (re)start: rebuild the process's state.
  virtual void Booted() = 0;
  // The process stops: drop everything that lives in memory.
  virtual void Halted() = 0;
  virtual JournalRole journal_role() const = 0;
  // The journal holds what the broker may lack (FLOWS.md §5).
  virtual bool HasRecords() const = 0;
  virtual Hello MakeHello() const = 0;
  virtual void QueueStateExchange() = 0;
  virtual void OnMessage(Message& m, const std::string& payload) = 0;
  virtual void OnWelcomed() {}
  virtual void Timers() = 0;
  virtual std::int64_t NextTimerUs() const = 0;  // INT64_MAX: none
  virtual void OnHandlerDone(std::uint64_t /*job*/) {}
  // Runs after the turn's commit, before its messages leave.
  virtual void AfterCommit() {}
  // A seeded defect of the model: this turn's messages leave before its
  // commit.
  virtual bool SendBeforeCommit() const { return false; }

  // ---- for the model --------------------------------------------------
  World& world_;
  // Queues `m` for the end of the turn; dropped unless welcomed (what is
  // lost is in the journal and recovered).
  void Send(const Message& m, std::string payload = {});
  // A crash point: with probability p the process stops here. True when it
  // did (the caller returns at once).
  bool MaybeCrash(double p, CrashHow how);
  bool welcomed() const { return machine_ && machine_->welcomed(); }
  // The connection's life cycle; exists from Booted() until Halted().
  const EndpointMachine& machine() const { return *machine_; }
  std::unique_ptr<Journal> journal_;
  testing::FaultEnv* env() { return env_.get(); }
  Incarnation incarnation() const {
    return journal_ ? journal_->incarnation() : 0;
  }
  // Every message this process put on the wire since it started, for the
  // write-ahead check at its next start (a REQUEST or RESPONSE that left
  // must be in the journal the next process opens).
  struct Left {
    SessionId session;
    Seq seq;
    ErrorCode status;
    std::string payload;
  };
  std::vector<Left> left_;
  double crash_p_ = 0;  // this party's per-step crash probability

 private:
  void Boot();
  void BeginTurn() { in_turn_ = true; }
  void EndTurn();
  void FlushSends();
  void Drive(EndpointEvent e, Epoch epoch = 0,
             std::chrono::milliseconds hb = {});
  void Carry(const EndpointMachine::Output& out);
  void SendNowOnWire(const Message& m, std::string_view payload);
  void SendHello();
  void OpenSocket();
  void DropSocket();
  void Reschedule();
  void WriteAheadCheck();

  const int party_;
  const Role role_;
  const std::string id_;
  std::unique_ptr<testing::FaultEnv> env_;
  std::unique_ptr<EndpointMachine> machine_;
  bool alive_ = false;
  bool gone_for_good_ = false;
  bool in_turn_ = false;
  std::uint32_t life_ = 1;
  std::uint64_t env_seed_ = 0;
  bool socket_open_ = false;
  std::uint64_t socket_gen_ = 0;
  std::uint64_t conn_ = 0;
  Time last_heard_{};
  Time last_sent_{};
  std::int64_t wake_at_ = INT64_MAX;
  std::uint64_t wake_gen_ = 0;
  struct Outgoing {
    std::string header;
    std::string payload;
    Seq seq;
    SessionId session;
    ErrorCode status;
    bool tracked;  // a REQUEST or RESPONSE (write-ahead check)
  };
  std::vector<Outgoing> outbox_;
};

}  // namespace rejoin::sim
