// echo_client: sends N calls to the "echo" service with up to W in flight
// (CallAsync), checks that every reply carries the payload that was sent,
// and prints a summary. Exit status 0 when every call came back intact.
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

struct Tally {
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t in_flight = 0;
  std::uint64_t ok = 0;
  std::uint64_t mismatched = 0;
  std::uint64_t failed = 0;
};

std::string PayloadFor(std::uint64_t i, std::size_t size) {
  std::string p = "echo-" + std::to_string(i) + "-";
  while (p.size() < size) p.push_back(static_cast<char>('a' + p.size() % 26));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  rejoin::ClientOptions options;
  options.durability = rejoin::Durability::kMemory;
  std::uint64_t count = 1000;
  std::uint64_t window = 64;
  std::size_t size = 32;
  std::string service = "echo";
  std::int64_t deadline_ms = 10000;

  CLI::App app{"rejoin echo client"};
  app.set_version_flag("--version", rejoin::VersionLine("echo_client"));
  app.add_option("--endpoint", options.endpoint, "broker endpoint")
      ->capture_default_str();
  rejoin::examples::AddCurveFlags(app, options.curve);
  app.add_option("--session", options.session_id,
                 "session id (default: random)");
  app.add_option("--service", service, "service name")->capture_default_str();
  app.add_option("--count", count, "calls to make")->capture_default_str();
  app.add_option("--window", window, "calls in flight at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--size", size, "payload bytes")->capture_default_str();
  app.add_option("--deadline-ms", deadline_ms, "deadline per call")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  if (options.session_id.empty()) {
    std::random_device rd;
    options.session_id = "echo-client-" + std::to_string(rd());
  }
  options.max_outstanding =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(window, 1));
  auto client = rejoin::Client::Open(options);
  if (!client.ok()) {
    std::fprintf(stderr, "echo_client: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }

  Tally tally;
  auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    {
      std::unique_lock lock(tally.mutex);
      tally.changed.wait(lock, [&] { return tally.in_flight < window; });
      ++tally.in_flight;
    }
    std::string payload = PayloadFor(i, size);
    auto done = [&tally, payload](const rejoin::Result<rejoin::Reply>& r) {
      std::lock_guard lock(tally.mutex);
      --tally.in_flight;
      if (!r.ok() || r->status != rejoin::ErrorCode::kOk) {
        ++tally.failed;
      } else if (r->payload != payload) {
        ++tally.mismatched;
      } else {
        ++tally.ok;
      }
      tally.changed.notify_all();
    };
    auto seq = (*client)->CallAsync(service, payload, done,
                                    std::chrono::milliseconds(deadline_ms));
    if (!seq.ok()) {
      std::lock_guard lock(tally.mutex);
      --tally.in_flight;
      ++tally.failed;
      std::fprintf(stderr, "echo_client: call %llu: %s\n",
                   static_cast<unsigned long long>(i),
                   seq.status().ToString().c_str());
    }
  }
  {
    std::unique_lock lock(tally.mutex);
    tally.changed.wait(lock, [&] { return tally.in_flight == 0; });
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  rejoin::ClientStats stats = (*client)->stats();
  std::printf(
      "echo_client: %llu calls, %llu ok, %llu mismatched, %llu failed in "
      "%.3f s (%.0f calls/s); resent %llu, recovered %llu, duplicates %llu\n",
      static_cast<unsigned long long>(count),
      static_cast<unsigned long long>(tally.ok),
      static_cast<unsigned long long>(tally.mismatched),
      static_cast<unsigned long long>(tally.failed), seconds,
      seconds > 0 ? static_cast<double>(count) / seconds : 0.0,
      static_cast<unsigned long long>(stats.requests_resent),
      static_cast<unsigned long long>(stats.responses_recovered),
      static_cast<unsigned long long>(stats.duplicate_responses));
  return tally.ok == count ? 0 : 1;
}
