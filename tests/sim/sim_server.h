// A server of the simulation: libserver's own operation logic (the
// ServerCore of libserver/src/server_core.h, the code the product runs)
// over the real Journal on this process's FaultEnv and the real
// EndpointMachine. This file is only the shell the product's I/O loop is:
// it feeds the core the broker's messages and finished handlers, and runs
// the jobs the core starts on a simulated worker. Three services:
// "idem" (idempotent, re-execute), "once" (not idempotent, answer in_doubt)
// and "hook" (not idempotent, a resolve hook that reads the application's
// own records). A handler's side effect happens when it finishes and goes to
// the checker and to the application's records, which outlive the process.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "counters.h"
#include "server_core.h"
#include "sim_endpoint.h"

namespace rejoin::sim {

class SimServer final : public SimEndpoint, private server_internal::Outbox {
 public:
  SimServer(World& world, int server);
  // Operations held RECEIVED or EXECUTED (tombstones not counted).
  std::size_t held_ops() const;

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
  // The core's messages leave with the turn.
  void Add(const Message& m, std::string_view payload) override;
  // After each call into the core: a failed journal stops the process (the
  // product's server stops answering and must be restarted); the jobs it
  // started go to the worker.
  void AfterCore();
  void StartJob(server_internal::Job job);
  const JournalOp* FindOp(const SessionId& s, Seq seq) const;

  const int server_;
  ServerOptions options_;
  std::vector<ServiceOptions> services_;
  std::vector<ServiceSpec> specs_;
  server_internal::Counters counters_;
  std::unique_ptr<server_internal::ServerCore> core_;  // while alive
  std::map<std::uint64_t, server_internal::Job> jobs_;
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
