// Handler and hook exceptions stop here: the public contract is that nothing
// thrown by application code reaches the I/O thread or the caller.
#include "worker_pool.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "log.h"

namespace rejoin::server_internal {
namespace {

// The reply the client sees for a handler's reply: the header promises that
// only kOk and kHandlerFailed come from handlers.
HandlerReply NormalizeHandlerReply(HandlerReply reply) {
  if (reply.status != ErrorCode::kOk &&
      reply.status != ErrorCode::kHandlerFailed) {
    reply.status = ErrorCode::kHandlerFailed;
  }
  return reply;
}

// A hook may also say kInDoubt: it looked and cannot tell, which is exactly
// what the client should then learn.
HandlerReply NormalizeHookReply(HandlerReply reply) {
  if (reply.status == ErrorCode::kInDoubt) {
    reply.payload.clear();
    return reply;
  }
  return NormalizeHandlerReply(std::move(reply));
}

}  // namespace

Result<std::unique_ptr<WorkerPool>> WorkerPool::Start(
    const std::vector<ServiceOptions>& services, std::uint32_t threads,
    Counters& counters) {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    return Result<std::unique_ptr<WorkerPool>>(
        ErrorCode::kIoError, std::string("eventfd: ") + std::strerror(errno));
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(services, counters, fd));
  pool->threads_.reserve(threads);
  for (std::uint32_t i = 0; i < threads; ++i) {
    pool->threads_.emplace_back([p = pool.get()] { p->Work(); });
  }
  return Result<std::unique_ptr<WorkerPool>>(std::move(pool));
}

WorkerPool::WorkerPool(const std::vector<ServiceOptions>& services,
                       Counters& counters, int fd)
    : services_(services), counters_(counters), fd_(fd) {}

WorkerPool::~WorkerPool() {
  Stop();
  ::close(fd_);
}

void WorkerPool::Submit(Job job) {
  if (threads_.empty()) {
    // Inline mode: the submitting (I/O) thread runs the job now and takes
    // the completion itself (InlineReady), so no wake-up is written.
    Completion c = Run(std::move(job));
    std::lock_guard<std::mutex> lock(mu_);
    done_.push_back(std::move(c));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void WorkerPool::Take(std::vector<Completion>& out, bool fd_ready) {
  if (fd_ready) {
    std::uint64_t count = 0;
    // Drain before taking: a completion that lands after the read below
    // writes the fd again, so none is ever left without a wake-up.
    while (::read(fd_, &count, sizeof(count)) > 0) {
    }
  }
  out.clear();
  std::lock_guard<std::mutex> lock(mu_);
  out.swap(done_);
}

bool WorkerPool::InlineReady() {
  if (!threads_.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return !done_.empty();
}

void WorkerPool::Wake() {
  const std::uint64_t one = 1;
  // Only fails with EAGAIN when the counter is saturated: already readable.
  (void)!::write(fd_, &one, sizeof(one));
}

void WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Completion c = Run(std::move(job));
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.push_back(std::move(c));
    }
    Wake();
  }
}

Completion WorkerPool::Run(Job job) {
  const ServiceOptions& service = services_[job.service];
  RequestView view{job.session, job.seq, service.name, job.request};
  Completion c;
  switch (job.kind) {
    case JobKind::kHandle:
      Bump(counters_.executed);
      try {
        c.reply = NormalizeHandlerReply(service.handler(view));
      } catch (const std::exception& e) {
        c.reply = HandlerReply{ErrorCode::kHandlerFailed, e.what()};
      } catch (...) {
        c.reply = HandlerReply{ErrorCode::kHandlerFailed,
                               "handler threw a non-standard exception"};
      }
      break;
    case JobKind::kResolve:
      try {
        std::optional<HandlerReply> reply = service.resolve(view);
        if (reply) c.reply = NormalizeHookReply(std::move(*reply));
      } catch (...) {
        // The hook could not look: whether the operation ran stays unknown,
        // and running the handler now could run it twice.
        Log().warn("resolve hook of {} threw for {}/{}; answering in_doubt",
                   service.name, job.session, job.seq);
        c.reply = HandlerReply{ErrorCode::kInDoubt, ""};
      }
      break;
  }
  c.job = std::move(job);
  return c;
}

}  // namespace rejoin::server_internal
