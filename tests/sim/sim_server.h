// A server of the simulation: a model of libserver's operation logic
// written from PROTOCOL.md §4.3 and §4.8 and FLOWS.md §3-6 over the real
// Journal (RECEIVED with the request, EXECUTED with the response, releases
// and tombstones, as libserver writes them) and the real EndpointMachine;
// in-doubt operations are settled through the real decision table
// (DecideOp). Three services: "idem" (idempotent, re-execute), "once" (not
// idempotent, answer in_doubt) and "hook" (not idempotent, a resolve hook
// that reads the application's own records). Handlers run on a simulated
// worker: their side effect happens when they finish, and goes to the
// checker and to the application's records, which outlive the process.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sim_endpoint.h"

namespace rejoin::sim {

class SimServer final : public SimEndpoint {
 public:
  SimServer(World& world, int server);
  // Operations held RECEIVED or EXECUTED (tombstones not counted).
  std::size_t held_ops() const;
  static std::vector<ServiceSpec> Specs(bool with_hook);

 protected:
  void Booted() override;
  void Halted() override;
  JournalRole journal_role() const override { return JournalRole::kServer; }
  bool HasRecords() const override { return held_ops() > 0; }
  Hello MakeHello() const override;
  void QueueStateExchange() override;
  void OnMessage(Message& m, const std::string& payload) override;
  void Timers() override {}
  std::int64_t NextTimerUs() const override { return INT64_MAX; }
  void OnHandlerDone(std::uint64_t job) override;
  bool SendBeforeCommit() const override { return send_early_; }
  void AfterCommit() override;

 private:
  struct Job {
    SessionId session;
    Seq seq;
    std::string service;
    std::string request;
    bool resolve;
  };
  const ServiceSpec* SpecOf(const std::string& service) const;
  const JournalOp* FindOp(const SessionId& s, Seq seq) const;
  bool IsReleased(const SessionId& s, Seq seq) const;
  void OnRequest(const Request& r, const std::string& payload);
  void ApplyDecision(const SessionId& s, const OpDecision& d);
  Action InDoubtAction(const std::string& service) const;
  void SettleInDoubt(const SessionId& s, Seq seq, Action action);
  void StartJob(const SessionId& s, Seq seq, const std::string& service,
                const std::string& request, bool resolve);
  void Execute(const SessionId& s, Seq seq, ErrorCode status,
               const std::string& payload);
  void Respond(const SessionId& s, Seq seq, ErrorCode status,
               const std::string& payload);
  void ReleaseBelow(const SessionId& s, Seq below);
  void Release(const SessionId& s, Seq below, const std::vector<Seq>& seqs);
  ServerVector VectorOf(const SessionId& s, const std::vector<Seq>* only) const;

  const int server_;
  const std::vector<ServiceSpec> specs_;
  std::map<std::uint64_t, Job> jobs_;
  std::uint64_t next_job_ = 1;
  bool send_early_ = false;
  std::vector<std::pair<SessionId, Seq>> received_now_;  // this turn
  // Receipts of a turn whose commit failed or was cut by a crash, with the
  // time: the next process's journal tells whether they were kept.
  std::map<std::pair<SessionId, Seq>, std::int64_t> unconfirmed_;
  // The application's own records (a database beside the journal): what
  // each handler did. The resolve hook reads them; they survive crashes.
  std::map<std::pair<SessionId, Seq>, std::pair<ErrorCode, std::string>> db_;
};

}  // namespace rejoin::sim
