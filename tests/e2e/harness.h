// Helpers for tests that run real processes on loopback: free ports, temp
// directories, child processes with kill -9, and the ledgers the test
// programs write. Every object cleans up what it started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.h"

namespace rejoin::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
std::string LoopbackEndpoint(int port);

// A child process started with fork+exec. Killed with SIGKILL and reaped on
// destruction if still running.
class Process {
 public:
  Process() = default;
  Process(const std::string& binary, std::vector<std::string> args,
          const std::string& log_file = "");
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  bool running();
  void Kill9();
  // SIGTERM, then waits up to `grace` before SIGKILL. Returns the exit code
  // (-signal when killed by a signal).
  int Terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Waits for exit up to `timeout`; returns the exit code, or nullopt-like
  // INT32_MIN on timeout (the process keeps running).
  int Wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = true;
};

inline constexpr int kStillRunning = INT32_MIN;

// Executions recorded by the test server: (session, seq) -> count.
std::map<std::pair<std::string, std::uint64_t>, int> ReadExecutions(
    const std::string& ledger);

// Outcomes recorded by the test client.
struct Outcome {
  std::string session;
  std::uint64_t seq = 0;
  std::string status;
  std::string payload;
};
std::vector<Outcome> ReadOutcomes(const std::string& file);

// Polls `done` every few milliseconds until true or `timeout`.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout);

}  // namespace rejoin::testing

#include "harness_inl.h"
