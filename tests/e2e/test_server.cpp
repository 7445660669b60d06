// rejoin-test-server: a rejoin::Server for the end-to-end tests. Its handler
// records every execution in an append-only ledger (one write(2) per line,
// independent of the rejoin journal) before it answers, so a test can count
// executions across kill -9. The reply names the seq it answers, so a test can
// tell a right answer from a misrouted one.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "rejoin/proto/version.h"
#include "rejoin/server/server.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

std::string LedgerLine(const rejoin::RequestView& r) {
  return r.session + " " + std::to_string(r.seq) + "\n";
}

std::string Reply(const rejoin::RequestView& r) {
  return "ok:" + std::string(r.payload) + "@" + std::to_string(r.seq);
}

}  // namespace

int main(int argc, char** argv) {
  rejoin::ServerOptions options;
  std::string ledger;
  std::string service = "echo";
  std::string policy = "answer";
  std::string durability = "process";
  bool idempotent = false;
  int delay_ms = 0;
  int crash_after = 0;
  CLI::App app{"rejoin test server"};
  app.set_version_flag("--version", rejoin::VersionLine("rejoin-test-server"));
  app.add_option("--endpoint", options.endpoint);
  app.add_option("--server-id", options.server_id)->required();
  app.add_option("--journal", options.journal_dir);
  app.add_option("--ledger", ledger)->required();
  app.add_option("--service", service);
  app.add_option("--policy", policy)
      ->check(CLI::IsMember({"reexecute", "resolve", "answer"}));
  app.add_option("--durability", durability)
      ->check(CLI::IsMember({"memory", "process", "sync"}));
  app.add_flag("--idempotent", idempotent);
  app.add_option("--concurrency", options.concurrency);
  app.add_flag("--inline", options.inline_handlers);
  app.add_option("--delay-ms", delay_ms, "time each handler takes");
  long long session_expiry_ms = 0;
  app.add_option("--session-expiry-ms", session_expiry_ms,
                 "ServerOptions::session_expiry (0: the default)");
  app.add_option("--crash-in-handler", crash_after,
                 "kill -9 itself inside the Nth execution, after the ledger "
                 "write (execution in doubt)");
  CLI11_PARSE(app, argc, argv);
  if (session_expiry_ms > 0) {
    options.session_expiry = std::chrono::milliseconds(session_expiry_ms);
  }

  options.durability = durability == "memory" ? rejoin::Durability::kMemory
                       : durability == "sync" ? rejoin::Durability::kSync
                                              : rejoin::Durability::kProcess;
  const int fd = ::open(ledger.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    std::perror("rejoin-test-server: ledger");
    return 2;
  }
  std::atomic<int> executions{0};

  rejoin::ServiceOptions svc;
  svc.name = service;
  svc.idempotent = idempotent;
  svc.policy = policy == "reexecute" ? rejoin::InDoubtPolicy::kReexecute
               : policy == "resolve" ? rejoin::InDoubtPolicy::kResolveHook
                                     : rejoin::InDoubtPolicy::kAnswerInDoubt;
  svc.handler = [&](const rejoin::RequestView& r) {
    const std::string line = LedgerLine(r);
    if (::write(fd, line.data(), line.size()) !=
        static_cast<ssize_t>(line.size())) {
      std::abort();
    }
    if (crash_after > 0 && ++executions == crash_after) {
      ::kill(::getpid(), SIGKILL);
    }
    if (delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    return rejoin::HandlerReply{rejoin::ErrorCode::kOk, Reply(r)};
  };
  svc.resolve =
      [&](const rejoin::RequestView& r) -> std::optional<rejoin::HandlerReply> {
    // The application's own records decide: the ledger says whether the
    // handler ran.
    std::ifstream in(ledger);
    const std::string want = LedgerLine(r);
    std::string line;
    while (std::getline(in, line)) {
      if (line + "\n" == want) {
        return rejoin::HandlerReply{rejoin::ErrorCode::kOk, Reply(r)};
      }
    }
    return std::nullopt;
  };

  auto server = rejoin::Server::Open(options, {svc});
  if (!server.ok()) {
    std::fprintf(stderr, "rejoin-test-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  ::signal(SIGTERM, OnSignal);
  ::signal(SIGINT, OnSignal);
  while (!g_stop.load()) {
    // A server whose journal failed serves no more: exit so it is noticed.
    if (rejoin::Status s =
            (*server)->WaitForFailure(std::chrono::milliseconds(10));
        !s.ok()) {
      std::fprintf(stderr, "rejoin-test-server: stopped serving: %s\n",
                   s.ToString().c_str());
      return 3;
    }
  }
  const rejoin::ServerStats s = (*server)->stats();
  std::printf(
      "server %s incarnation %llu executed=%llu duplicates=%llu "
      "resent=%llu reexecuted=%llu resolved=%llu in_doubt=%llu\n",
      options.server_id.c_str(),
      static_cast<unsigned long long>((*server)->incarnation()),
      static_cast<unsigned long long>(s.executed),
      static_cast<unsigned long long>(s.duplicates),
      static_cast<unsigned long long>(s.responses_resent),
      static_cast<unsigned long long>(s.reexecuted),
      static_cast<unsigned long long>(s.resolved),
      static_cast<unsigned long long>(s.answered_in_doubt));
  server->reset();
  ::close(fd);
  return 0;
}
