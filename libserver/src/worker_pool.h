// Worker threads that run handlers and resolve hooks for the I/O thread. The
// I/O thread submits jobs and collects completions; workers never touch the
// socket or the journal. A worker's completion makes an eventfd readable,
// which the I/O thread polls beside its sockets, so it sleeps in one place.
// Without workers (inline mode) the submitting thread runs each job at once
// and collects the completion itself: no eventfd traffic.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "counters.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"
#include "rejoin/server/server.h"

namespace rejoin::server_internal {

enum class JobKind : std::uint8_t {
  kHandle,   // run the service's handler
  kResolve,  // ask the service's resolve hook
};

struct Job {
  JobKind kind = JobKind::kHandle;
  SessionId session;
  Seq seq = 0;
  std::size_t service = 0;  // index into the services the pool was given
  std::string request;      // a copy: the journal belongs to the I/O thread
};

struct Completion {
  Job job;
  // kHandle: always set. kResolve: the hook's reply, or empty when the hook
  // found the operation not done (the handler must run).
  std::optional<HandlerReply> reply;
};

class WorkerPool {
 public:
  // Starts `threads` workers; with 0, Submit() runs each job on the calling
  // thread. `services` and `counters` must outlive the pool. Fails with
  // kIoError when the eventfd cannot be created.
  static Result<std::unique_ptr<WorkerPool>> Start(
      const std::vector<ServiceOptions>& services, std::uint32_t threads,
      Counters& counters);

  // Stop()s.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(Job job);
  // Moves every completion so far into `out` (cleared first; its capacity is
  // kept for the next completions). `fd_ready`: the caller saw fd() readable,
  // so it is drained as well.
  void Take(std::vector<Completion>& out, bool fd_ready);
  // Inline mode: completions of jobs run by Submit() wait to be taken (the
  // eventfd does not say so).
  bool InlineReady();
  // Readable while a worker's completions wait (or after Wake()).
  int fd() const { return fd_; }
  // Makes fd() readable without a completion: wakes the I/O thread.
  void Wake();
  // Lets the workers finish every submitted job, then joins them.
  void Stop();

 private:
  WorkerPool(const std::vector<ServiceOptions>& services, Counters& counters,
             int fd);
  void Work();
  Completion Run(Job job);

  const std::vector<ServiceOptions>& services_;
  Counters& counters_;
  const int fd_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;          // guarded by mu_
  std::vector<Completion> done_;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace rejoin::server_internal
