// A client of the simulation: one session, its application, and libclient's
// own operation logic (the SessionCore of libclient/src/session_core.h, the
// code the product runs: journaling, resends timed by the round-trip
// estimate, loss hints, acknowledgements, recovery) over the real Journal on
// this process's FaultEnv and the real EndpointMachine. This file is the
// shell Client::Impl is, and the application: it makes calls, records each
// answer it gets with the checker, and after a restart does what the
// library asks of an application: Collect() every operation the journal
// holds that it has no answer for, and Forget() the outcomes it has.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "session_core.h"
#include "sim_endpoint.h"

namespace rejoin::sim {

class SimClient final : public SimEndpoint {
 public:
  SimClient(World& world, int client);
  // The application has made every call it will make and has every answer.
  bool idle() const;
  std::size_t journal_ops() const;

 protected:
  void Booted() override;
  void Halted() override;
  JournalRole journal_role() const override { return JournalRole::kClient; }
  bool HasRecords() const override;
  Hello MakeHello() const override;
  void QueueStateExchange() override;
  void OnMessage(Message& m, const std::string& payload) override;
  void OnWelcomed() override;
  void Timers() override;
  std::int64_t NextTimerUs() const override;
  void AfterCommit() override;
  bool SendBeforeCommit() const override;

 private:
  // The session's records in this process's journal.
  class Records final : public client_internal::SessionRecords {
   public:
    explicit Records(SimClient& c) : c_(c) {}
    Status AppendOp(Seq seq, JournalOp op) override;
    Status AppendRelease(Seq below, const std::vector<Seq>& seqs) override;
    const JournalSession* session() const override;

   private:
    SimClient& c_;
  };
  // The core's messages leave with the turn.
  class Wire final : public client_internal::SessionWire {
   public:
    explicit Wire(SimClient& c) : c_(c) {}
    bool Send(const Message& m) override;
    void AddRequest(const Request& r, std::string_view payload) override;
    bool SendRequests() override;
    void ClearRequests() override { batch_.clear(); }

   private:
    SimClient& c_;
    std::vector<std::pair<Request, std::string>> batch_;
  };

  bool MayCall() const;
  void Call();
  // The application's waiter for `seq`; `collected`: a Collect() after a
  // restart (its outcome is then the application's to Forget()).
  client_internal::Waiter WaiterFor(Seq seq, bool collected);
  void OnAnswer(Seq seq, bool collected, const Result<Reply>& result);

  const int client_;
  ClientOptions options_;
  client_internal::AtomicStats stats_;
  Records records_{*this};
  Wire wire_{*this};
  std::unique_ptr<client_internal::SessionCore> core_;  // while alive
  int calls_made_ = 0;             // by the application, across processes
  std::vector<Seq> accepted_now_;  // calls journaled this turn
  std::size_t collecting_ = 0;     // Collect() waiters not yet answered
  // The application's own record of the answers it has (it outlives the
  // process).
  std::set<Seq> app_has_;
};

}  // namespace rejoin::sim
