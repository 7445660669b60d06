// A client of the simulation: one session, its application (which makes
// calls and records each answer it gets with the checker), and a model of
// libclient's operation logic written from FLOWS.md §3-6 over the real
// Journal (the records libclient writes: PREPARED with the request,
// COMPLETED with the response, releases below the watermark) and the real
// EndpointMachine. Resends use a fixed delay with doubling backoff instead
// of libclient's round-trip estimate.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

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
  struct Pending {
    std::string service;
    std::string payload;
    bool sent = false;    // sent by this process
    bool resend = false;  // not the first send of the operation
    std::int64_t resend_at = 0;
    std::int64_t backoff = 0;
  };
  bool MayCall() const;
  void Call();
  void SendRequest(Seq seq, Pending& p);
  void OnResponse(const Response& r, const std::string& payload);
  void Forget();
  Seq Watermark() const;
  ClientVector Vector(const std::vector<Seq>* only) const;

  const int client_;
  int calls_made_ = 0;  // by the application, across processes
  // The process's state, rebuilt from the journal at each start.
  std::map<Seq, Pending> pending_;
  std::set<Seq> completed_;  // COMPLETED at or above the watermark
  std::set<Seq> unacked_;    // completed, not yet told to the broker
  std::int64_t ack_at_ = INT64_MAX;
  // Booted with completed calls in the journal: they are forgotten after
  // the first commit, even if no new answer comes to do it.
  bool forget_after_boot_ = false;
  Seq next_seq_ = 1;
  std::vector<Seq> accepted_now_;
  struct Answer {
    Seq seq;
    ErrorCode status;
    std::string payload;
  };
  std::vector<Answer> answers_now_;
  // The application's own record of the answers it has (it outlives the
  // process): at a start, outcomes the journal holds and the application
  // never got (a commit that failed yet reached the disk) are handed over.
  std::set<Seq> app_has_;
};

}  // namespace rejoin::sim
