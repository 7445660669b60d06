// rejoin-test-client: a rejoin::Client for the end-to-end tests. It keeps
// issuing operations (up to --window in flight) until --count distinct
// outcomes are recorded in its outcomes file, across any number of kill -9
// restarts: on start it reads the file, then collects every operation its
// journal still holds, then carries on. Each outcome line is
// "session seq status payload", written with one write(2).
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

#include "e2e/harness.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/version.h"

namespace {

class Recorder {
 public:
  Recorder(const std::string& file, std::string session)
      : session_(std::move(session)) {
    for (const auto& o : rejoin::testing::ReadOutcomes(file)) {
      if (o.session == session_) done_.insert(o.seq);
    }
    fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  ~Recorder() { ::close(fd_); }
  bool ok() const { return fd_ >= 0; }

  void Record(const rejoin::Reply& r) {
    std::string line = session_ + " " + std::to_string(r.seq) + " " +
                       std::string(rejoin::ErrorCodeName(r.status)) + " " +
                       r.payload + "\n";
    std::lock_guard<std::mutex> lock(mu_);
    if (::write(fd_, line.data(), line.size()) < 0) std::abort();
    done_.insert(r.seq);
    cv_.notify_all();
  }
  std::size_t done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_.size();
  }

 private:
  std::string session_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::uint64_t> done_;
};

}  // namespace

int main(int argc, char** argv) {
  rejoin::ClientOptions options;
  std::string outcomes;
  std::string service = "echo";
  std::string durability = "process";
  std::size_t count = 100;
  std::size_t window = 1;
  int deadline_ms = 60000;
  CLI::App app{"rejoin test client"};
  app.set_version_flag("--version", rejoin::VersionLine("rejoin-test-client"));
  app.add_option("--endpoint", options.endpoint);
  app.add_option("--session", options.session_id)->required();
  app.add_option("--journal", options.journal_dir);
  app.add_option("--outcomes", outcomes)->required();
  app.add_option("--service", service);
  app.add_option("--durability", durability)
      ->check(CLI::IsMember({"memory", "process", "sync"}));
  app.add_option("--count", count);
  app.add_option("--window", window);
  app.add_option("--deadline-ms", deadline_ms);
  CLI11_PARSE(app, argc, argv);
  options.durability = durability == "memory" ? rejoin::Durability::kMemory
                       : durability == "sync" ? rejoin::Durability::kSync
                                              : rejoin::Durability::kProcess;
  options.heartbeat = std::chrono::milliseconds(50);
  options.resend_delay = std::chrono::milliseconds(100);

  Recorder recorder(outcomes, options.session_id);
  if (!recorder.ok()) {
    std::perror("rejoin-test-client: outcomes");
    return 2;
  }
  auto opened = rejoin::Client::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "rejoin-test-client: %s\n",
                 opened.status().ToString().c_str());
    return 1;
  }
  rejoin::Client& client = **opened;
  const auto deadline = std::chrono::milliseconds(deadline_ms);

  // The patent's second process: outcomes of operations issued before a
  // crash are collected first.
  for (const rejoin::OperationInfo& op : client.ListOperations()) {
    auto r = client.Collect(op.seq, deadline);
    if (!r.ok()) {
      std::fprintf(stderr, "rejoin-test-client: collect %llu: %s\n",
                   static_cast<unsigned long long>(op.seq),
                   r.status().ToString().c_str());
      return 3;
    }
    recorder.Record(*r);
  }

  std::mutex mu;
  std::condition_variable cv;
  std::size_t in_flight = 0;
  int failures = 0;
  std::size_t issued = 0;
  while (recorder.done() + in_flight < count || in_flight > 0) {
    std::unique_lock<std::mutex> lock(mu);
    if (failures > 0) break;
    if (in_flight < window && recorder.done() + in_flight < count) {
      ++in_flight;
      lock.unlock();
      const std::string payload = "op" + std::to_string(issued++);
      auto seq = client.CallAsync(
          service, payload,
          [&](const rejoin::Result<rejoin::Reply>& r) {
            if (r.ok()) recorder.Record(*r);
            std::lock_guard<std::mutex> g(mu);
            if (!r.ok()) ++failures;
            --in_flight;
            cv.notify_all();
          },
          deadline);
      if (!seq.ok()) {
        std::lock_guard<std::mutex> g(mu);
        --in_flight;
        if (seq.status().code() != rejoin::ErrorCode::kLimitExceeded) {
          ++failures;
        }
      }
      continue;
    }
    cv.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (failures > 0) {
    std::fprintf(stderr, "rejoin-test-client: %d calls failed\n", failures);
    return 4;
  }
  const rejoin::ClientStats s = client.stats();
  std::printf(
      "client %s done=%zu resent=%llu recovered=%llu in_doubt=%llu "
      "duplicates=%llu\n",
      options.session_id.c_str(), recorder.done(),
      static_cast<unsigned long long>(s.requests_resent),
      static_cast<unsigned long long>(s.responses_recovered),
      static_cast<unsigned long long>(s.in_doubt),
      static_cast<unsigned long long>(s.duplicate_responses));
  return 0;
}
