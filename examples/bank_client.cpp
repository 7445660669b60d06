// bank_client: sends N random transfers "FROM TO AMOUNT" to bank.transfer
// from a durable session, up to W in flight, and prints one line per outcome
// ("seq <seq> <status> <reply>") and a summary. Started again on the same
// journal it first lists what the previous run left behind and collects
// those outcomes ("collected N outcomes"): an operation whose caller died is
// not lost, its outcome is picked up by the next process of the session.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>

#include "curve_flags.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/version.h"

namespace {

constexpr int kAccounts = 10;  // the bank server's account count

struct Tally {
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t in_flight = 0;
  std::uint64_t ok = 0;
  std::uint64_t rejected = 0;  // handler_failed: e.g. insufficient funds
  std::uint64_t other = 0;     // in_doubt, unavailable, deadline, ...
};

void PrintOutcome(rejoin::Seq seq, const rejoin::Result<rejoin::Reply>& r) {
  if (r.ok()) {
    std::printf("seq %llu %s %s\n", static_cast<unsigned long long>(seq),
                std::string(rejoin::ErrorCodeName(r->status)).c_str(),
                r->payload.c_str());
  } else {
    std::printf("seq %llu %s\n", static_cast<unsigned long long>(seq),
                r.status().ToString().c_str());
  }
  std::fflush(stdout);
}

// Collects the outcome of every operation an earlier process of the session
// left in the journal, then lets the journal forget them.
std::uint64_t CollectLeftovers(rejoin::Client& client,
                               std::chrono::milliseconds deadline) {
  std::uint64_t collected = 0;
  for (const rejoin::OperationInfo& op : client.ListOperations()) {
    std::printf("left over: seq %llu %s %s\n",
                static_cast<unsigned long long>(op.seq),
                std::string(rejoin::ClientOpStateName(op.state)).c_str(),
                op.service.c_str());
    auto r = client.Collect(op.seq, deadline);
    PrintOutcome(op.seq, r);
    if (r.ok()) {
      ++collected;
      (void)client.Forget(op.seq);
    }
  }
  std::printf("collected %llu outcomes\n",
              static_cast<unsigned long long>(collected));
  return collected;
}

}  // namespace

int main(int argc, char** argv) {
  rejoin::ClientOptions options;
  options.session_id = "bank-client";
  std::uint64_t count = 100;
  std::uint64_t window = 8;
  std::int64_t deadline_ms = 10000;
  std::uint64_t seed = 0;

  CLI::App app{"rejoin bank client"};
  app.set_version_flag("--version", rejoin::VersionLine("bank_client"));
  app.add_option("--endpoint", options.endpoint, "broker endpoint")
      ->capture_default_str();
  rejoin::examples::AddCurveFlags(app, options.curve);
  app.add_option("--session", options.session_id, "durable session id")
      ->capture_default_str();
  app.add_option("--journal", options.journal_dir, "journal directory")
      ->required();
  app.add_option("--count", count, "transfers to send")->capture_default_str();
  app.add_option("--window", window, "transfers in flight at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--deadline-ms", deadline_ms, "deadline per transfer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "random seed (0: random)");
  CLI11_PARSE(app, argc, argv);

  options.max_outstanding =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(window, 1));
  auto opened = rejoin::Client::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "bank_client: %s\n",
                 opened.status().ToString().c_str());
    return 1;
  }
  rejoin::Client& client = **opened;
  std::chrono::milliseconds deadline(deadline_ms);
  std::printf("bank_client: session %s, incarnation %llu\n",
              client.session_id().c_str(),
              static_cast<unsigned long long>(client.incarnation()));
  if (client.incarnation() > 1) CollectLeftovers(client, deadline);

  std::mt19937_64 rng(seed != 0 ? seed : std::random_device{}());
  std::uniform_int_distribution<int> account(0, kAccounts - 1);
  std::uniform_int_distribution<int> amount(1, 100);
  Tally tally;
  for (std::uint64_t i = 0; i < count; ++i) {
    {
      std::unique_lock lock(tally.mutex);
      tally.changed.wait(lock, [&] { return tally.in_flight < window; });
      ++tally.in_flight;
    }
    int from = account(rng);
    int to = account(rng);
    while (to == from) to = account(rng);
    std::string payload = std::to_string(from) + " " + std::to_string(to) +
                          " " + std::to_string(amount(rng));
    auto done = [&tally](const rejoin::Result<rejoin::Reply>& r) {
      std::lock_guard lock(tally.mutex);
      --tally.in_flight;
      if (r.ok()) {
        PrintOutcome(r->seq, r);
        if (r->status == rejoin::ErrorCode::kOk) {
          ++tally.ok;
        } else if (r->status == rejoin::ErrorCode::kHandlerFailed) {
          ++tally.rejected;
        } else {
          ++tally.other;
        }
      } else {
        PrintOutcome(0, r);
        ++tally.other;
      }
      tally.changed.notify_all();
    };
    auto issued = client.CallAsync("bank.transfer", payload, done, deadline);
    if (!issued.ok()) {
      std::lock_guard lock(tally.mutex);
      --tally.in_flight;
      ++tally.other;
      std::fprintf(stderr, "bank_client: transfer %llu: %s\n",
                   static_cast<unsigned long long>(i),
                   issued.status().ToString().c_str());
    }
  }
  {
    std::unique_lock lock(tally.mutex);
    tally.changed.wait(lock, [&] { return tally.in_flight == 0; });
  }
  rejoin::ClientStats stats = client.stats();
  std::printf(
      "bank_client: %llu transfers: %llu ok, %llu rejected, %llu other; "
      "resent %llu, recovered %llu, in doubt %llu\n",
      static_cast<unsigned long long>(count),
      static_cast<unsigned long long>(tally.ok),
      static_cast<unsigned long long>(tally.rejected),
      static_cast<unsigned long long>(tally.other),
      static_cast<unsigned long long>(stats.requests_resent),
      static_cast<unsigned long long>(stats.responses_recovered),
      static_cast<unsigned long long>(stats.in_doubt));
  return tally.other == 0 ? 0 : 1;
}
