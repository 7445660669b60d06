// bank_server: the "bank.transfer" service, which is not idempotent: a
// transfer run twice moves the money twice. Its ledger (bank_ledger.h)
// records each transfer before the handler returns, and the resolve hook
// consults it when a crash leaves a transfer in doubt, so every transfer
// takes effect exactly once. `bank_server --check --ledger FILE` prints the
// balances and exits non-zero if money appeared or vanished or a transfer
// was recorded twice. Runs until SIGINT or SIGTERM, or until its journal
// fails (then exits 3).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "bank_ledger.h"
#include "curve_flags.h"
#include "example_util.h"
#include "rejoin/proto/version.h"
#include "rejoin/server/server.h"

namespace {

using rejoin::examples::BankLedger;

rejoin::HandlerReply ReplyOf(const rejoin::examples::LedgerEntry& e) {
  return rejoin::HandlerReply{
      e.applied ? rejoin::ErrorCode::kOk : rejoin::ErrorCode::kHandlerFailed,
      e.reply};
}

int Check(const std::string& path) {
  auto ledger = BankLedger::Open(path, BankLedger::Mode::kReadOnly, false);
  if (!ledger.ok()) {
    std::fprintf(stderr, "bank_server: %s\n",
                 ledger.status().ToString().c_str());
    return 2;
  }
  const rejoin::examples::LedgerReport report = (*ledger)->Check();
  for (std::size_t i = 0; i < report.balances.size(); ++i) {
    std::printf("account %zu: %lld\n", i,
                static_cast<long long>(report.balances[i]));
  }
  std::printf("total: %lld (expected %lld)\n",
              static_cast<long long>(report.total),
              static_cast<long long>(rejoin::examples::kInitialTotal));
  std::printf("transfers: %zu applied, %zu rejected\n", report.applied,
              report.rejected);
  std::printf("duplicates: %zu\n", report.duplicates.size());
  for (const auto& [key, count] : report.duplicates) {
    std::printf("duplicate: session %s seq %llu recorded %d times\n",
                key.first.c_str(), static_cast<unsigned long long>(key.second),
                count);
  }
  return report.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  rejoin::ServerOptions options;
  options.server_id = "bank-1";
  std::string durability = "process";
  std::string ledger_path;
  bool check = false;

  CLI::App app{"rejoin bank server"};
  app.set_version_flag("--version", rejoin::VersionLine("bank_server"));
  app.add_option("--endpoint", options.endpoint, "broker endpoint")
      ->capture_default_str();
  rejoin::examples::AddCurveFlags(app, options.curve);
  app.add_option("--server-id", options.server_id, "durable server id")
      ->capture_default_str();
  app.add_option("--journal", options.journal_dir,
                 "journal directory (not needed with --durability memory)");
  app.add_option("--ledger", ledger_path, "the bank's ledger file")->required();
  app.add_option("--durability", durability,
                 "memory, process or sync (sync also fdatasyncs the ledger)")
      ->check(CLI::IsMember(rejoin::examples::DurabilityNames()))
      ->capture_default_str();
  app.add_option("--concurrency", options.concurrency,
                 "handlers running at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_flag("--check", check,
               "print the ledger's balances and exit: 0 if consistent");
  CLI11_PARSE(app, argc, argv);
  if (check) return Check(ledger_path);
  options.durability = rejoin::examples::DurabilityNames().at(durability);

  auto opened =
      BankLedger::Open(ledger_path, BankLedger::Mode::kReadWrite,
                       options.durability == rejoin::Durability::kSync);
  if (!opened.ok()) {
    std::fprintf(stderr, "bank_server: %s\n",
                 opened.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<BankLedger> ledger = std::move(*opened);

  rejoin::ServiceOptions transfer;
  transfer.name = "bank.transfer";
  transfer.idempotent = false;
  transfer.policy = rejoin::InDoubtPolicy::kResolveHook;
  transfer.handler = [ledger](const rejoin::RequestView& r) {
    auto t = rejoin::examples::ParseTransfer(r.payload);
    if (!t.ok()) {
      return rejoin::HandlerReply{rejoin::ErrorCode::kHandlerFailed,
                                  "bad_request:" + t.status().message()};
    }
    auto entry = ledger->Apply(r.session, r.seq, *t);
    if (!entry.ok()) {
      // Nothing was recorded, so nothing was applied: the client may safely
      // try again with a new operation.
      return rejoin::HandlerReply{rejoin::ErrorCode::kHandlerFailed,
                                  "ledger_error:" + entry.status().message()};
    }
    return ReplyOf(*entry);
  };
  transfer.resolve =
      [ledger](
          const rejoin::RequestView& r) -> std::optional<rejoin::HandlerReply> {
    auto entry = ledger->Find(r.session, r.seq);
    if (!entry) return std::nullopt;
    return ReplyOf(*entry);
  };

  rejoin::examples::BlockStopSignals();
  auto server = rejoin::Server::Open(options, {transfer});
  if (!server.ok()) {
    std::fprintf(stderr, "bank_server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "bank_server: %s serving 'bank.transfer' at %s, incarnation %llu\n",
      options.server_id.c_str(), options.endpoint.c_str(),
      static_cast<unsigned long long>((*server)->incarnation()));
  std::fflush(stdout);

  const int exit_code =
      rejoin::examples::WaitForStopSignalOrFailure(**server, "bank_server");
  const rejoin::ServerStats stats = (*server)->stats();
  server.value().reset();
  std::printf(
      "bank_server: executed %llu, duplicates %llu, resolved %llu, "
      "reexecuted %llu\n",
      static_cast<unsigned long long>(stats.executed),
      static_cast<unsigned long long>(stats.duplicates),
      static_cast<unsigned long long>(stats.resolved),
      static_cast<unsigned long long>(stats.reexecuted));
  return exit_code;
}
