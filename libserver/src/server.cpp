// Server's public face: option checks, the journal, the threads. The protocol
// itself lives in io_loop.cpp; this file only builds and tears down.
#include "rejoin/server/server.h"

#include <atomic>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <zmq.hpp>

#include "counters.h"
#include "io_loop.h"
#include "log.h"
#include "rejoin/proto/journal.h"
#include "rejoin/transport/link.h"
#include "worker_pool.h"

namespace rejoin {

using server_internal::Counters;
using server_internal::IoLoop;
using server_internal::WorkerPool;
using transport::Link;

namespace {

// One thread per unit of concurrency: a bound keeps a typo from starting a
// hundred thousand threads.
constexpr std::uint32_t kMaxConcurrency = 4096;

Status InvalidArgument(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

Status Validate(const ServerOptions& options,
                const std::vector<ServiceOptions>& services) {
  if (!IsValidId(options.server_id)) {
    return InvalidArgument("server_id must be 1..128 printable ASCII bytes");
  }
  if (options.endpoint.empty()) return InvalidArgument("endpoint is empty");
  if (Status s = transport::CheckEndpoint(options.endpoint, /*bind=*/false);
      !s.ok()) {
    return s;
  }
  if (options.durability != Durability::kMemory &&
      options.journal_dir.empty()) {
    return InvalidArgument(
        "journal_dir is required unless durability is "
        "memory");
  }
  if (options.concurrency < 1 || options.concurrency > kMaxConcurrency) {
    return InvalidArgument("concurrency must be 1.." +
                           std::to_string(kMaxConcurrency));
  }
  if (options.heartbeat.count() <= 0) {
    return InvalidArgument("heartbeat must be positive");
  }
  if (options.session_expiry.count() <= 0) {
    return InvalidArgument("session_expiry must be positive");
  }
  if (services.empty()) return InvalidArgument("no services");
  std::set<std::string> names;
  for (const ServiceOptions& s : services) {
    if (!IsValidServiceName(s.name)) {
      return InvalidArgument("invalid service name '" + s.name + "'");
    }
    if (!names.insert(s.name).second) {
      return InvalidArgument("service '" + s.name + "' listed twice");
    }
    if (!s.handler) {
      return InvalidArgument("service '" + s.name + "' has no handler");
    }
    // The policy may come from a cast of application input.
    const auto policy = static_cast<std::uint8_t>(s.policy);
    if (policy < static_cast<std::uint8_t>(InDoubtPolicy::kReexecute) ||
        policy > static_cast<std::uint8_t>(InDoubtPolicy::kAnswerInDoubt)) {
      return InvalidArgument("service '" + s.name + "' has no valid policy");
    }
    if (s.policy == InDoubtPolicy::kResolveHook && !s.resolve) {
      return InvalidArgument("service '" + s.name +
                             "' has policy resolve_hook but no hook");
    }
  }
  return Status::Ok();
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, std::vector<ServiceOptions> services)
      : options_(std::move(options)), services_(std::move(services)) {}

  ~Impl() {
    if (io_thread_.joinable()) {
      stop_.store(true, std::memory_order_release);
      pool_->Wake();
      io_thread_.join();
    }
    // The loop returns only when every job was answered, so the workers are
    // idle here; Stop joins them.
    if (pool_) pool_->Stop();
    loop_.reset();
    context_.close();
  }

  Status Start(std::unique_ptr<Journal> journal) {
    incarnation_ = journal->incarnation();
    // The first socket is made here so that a bad endpoint is reported by
    // Open; the I/O thread takes it over (thread start is the barrier
    // libzmq asks for when a socket changes threads).
    std::optional<transport::CurveKeys> curve;
    if (options_.curve.enabled()) {
      Result<transport::CurveKeys> keys =
          transport::LoadCurveKeys(options_.curve);
      if (!keys.ok()) return keys.status();
      curve = std::move(*keys);
    }
    Result<std::unique_ptr<Link>> link =
        Link::Open(context_, options_.endpoint, curve ? &*curve : nullptr);
    if (!link.ok()) return InvalidArgument(link.status().message());
    Result<std::unique_ptr<WorkerPool>> pool = WorkerPool::Start(
        services_, options_.inline_handlers ? 0 : options_.concurrency,
        counters_);
    if (!pool.ok()) return pool.status();
    pool_ = std::move(*pool);
    loop_ =
        std::make_unique<IoLoop>(options_, services_, std::move(journal),
                                 std::move(*link), context_, *pool_, counters_);
    io_thread_ = std::thread([this] { loop_->Run(stop_); });
    return Status::Ok();
  }

  ServerStats stats() const { return counters_.Snapshot(); }
  Status status() const { return counters_.health.status(); }
  Status WaitForFailure(std::chrono::milliseconds timeout) const {
    return counters_.health.Wait(timeout);
  }
  Incarnation incarnation() const { return incarnation_; }

 private:
  const ServerOptions options_;
  const std::vector<ServiceOptions> services_;
  Counters counters_;
  Incarnation incarnation_ = 0;
  zmq::context_t context_{1};
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<IoLoop> loop_;
  std::atomic<bool> stop_{false};
  std::thread io_thread_;
};

Result<std::unique_ptr<Server>> Server::Open(
    ServerOptions options, std::vector<ServiceOptions> services) {
  if (Status s = Validate(options, services); !s.ok()) return s;
  JournalOptions jo;
  jo.dir = options.journal_dir;
  jo.durability = options.durability;
  jo.role = JournalRole::kServer;
  jo.owner_id = options.server_id;
  Result<std::unique_ptr<Journal>> journal = Journal::Open(std::move(jo));
  if (!journal.ok()) return journal.status();
  if (const ReplayReport& r = (*journal)->report(); r.truncated_bytes > 0) {
    server_internal::Log().warn(
        "server {}: journal in {}: cut a torn tail of {} bytes off {} at "
        "offset {} ({})",
        options.server_id, options.journal_dir, r.truncated_bytes,
        r.truncated_segment, r.truncated_offset, r.truncated_reason);
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(services));
  if (Status s = impl->Start(std::move(*journal)); !s.ok()) return s;
  return Result<std::unique_ptr<Server>>(
      std::unique_ptr<Server>(new Server(std::move(impl))));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() = default;

ServerStats Server::stats() const { return impl_->stats(); }

Incarnation Server::incarnation() const { return impl_->incarnation(); }

Status Server::status() const { return impl_->status(); }

Status Server::WaitForFailure(std::chrono::milliseconds timeout) const {
  return impl_->WaitForFailure(timeout);
}

}  // namespace rejoin
