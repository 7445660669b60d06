// The application side of rejoin::Client: option checks, opening the journal,
// seq assignment and the command queue to the I/O thread. Nothing here
// touches the socket or the journal after Open; see io_loop.cpp for that.
#include "rejoin/client/client.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <system_error>
#include <utility>

#include "client_impl.h"
#include "hub.h"
#include "log.h"
#include "rejoin/proto/codec.h"

namespace rejoin {

namespace client_internal {

namespace {

// The floor for a session's seqs at every open: microseconds since the Unix
// epoch. A new journal starts there, so a session that lost its journal
// never reuses a seq a server may still remember; an existing one is raised
// to it, so a journal restored from a backup (or salvaged) does not hand out
// again the seqs its lost records had issued, unless that lost run averaged
// more than one call per microsecond (PROTOCOL.md §1.2, FLOWS.md §2.2).
Seq TimeBasedFirstSeq() {
  auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch)
                .count();
  return us > 0 ? static_cast<Seq>(us) : Seq{1};
}

Status CheckOptions(const ClientOptions& o) {
  if (!IsValidId(o.session_id)) {
    return Status(ErrorCode::kInvalidArgument,
                  "session_id must be 1..128 printable ASCII bytes");
  }
  if (o.endpoint.empty() && o.connection == nullptr) {
    return Status(ErrorCode::kInvalidArgument, "endpoint is empty");
  }
  if (o.shared_journal != nullptr) {
    if (!o.journal_dir.empty()) {
      return Status(ErrorCode::kInvalidArgument,
                    "journal_dir and shared_journal exclude each other");
    }
  } else if (o.durability != Durability::kMemory && o.journal_dir.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "journal_dir is required unless durability is memory");
  }
  if (o.max_outstanding == 0) {
    return Status(ErrorCode::kInvalidArgument, "max_outstanding must be >= 1");
  }
  if (o.default_deadline.count() <= 0 || o.heartbeat.count() <= 0 ||
      o.resend_delay.count() <= 0) {
    return Status(ErrorCode::kInvalidArgument,
                  "default_deadline, heartbeat and resend_delay must be > 0");
  }
  return Status::Ok();
}

}  // namespace
}  // namespace client_internal

using client_internal::CallCommand;
using client_internal::Clock;
using client_internal::CollectCommand;
using client_internal::Command;
using client_internal::ForgetCommand;
using client_internal::ListCommand;
using client_internal::Log;

Result<std::unique_ptr<Client::Impl>> Client::Impl::Create(
    ClientOptions options) {
  if (Status s = client_internal::CheckOptions(options); !s.ok()) return s;

  std::shared_ptr<SharedJournal> shared = options.shared_journal;
  if (shared == nullptr) {
    // A private journal is a shared one with a single session, named after
    // it.
    auto opened = SharedJournal::Open(options.journal_dir, options.durability,
                                      options.session_id);
    if (!opened.ok()) return opened.status();
    shared = std::move(opened).value();
  }
  auto journal =
      client_internal::SessionJournal::Attach(shared, options.session_id);
  if (!journal.ok()) return journal.status();
  options.durability = (*journal)->durability();

  std::shared_ptr<client_internal::Hub> hub;
  if (options.connection != nullptr) {
    hub = options.connection->hub_;
    options.endpoint = hub->endpoint();
  } else {
    // A session of its own: a connection and I/O thread of its own.
    auto started = client_internal::Hub::Start(options.endpoint, options.curve);
    if (!started.ok()) return started.status();
    hub = std::move(started).value();
  }

  std::unique_ptr<Impl> impl(
      new Impl(std::move(options), std::move(journal).value(), hub));
  if (!hub->Attach(impl.get())) {
    impl->hub_.reset();  // never attached: nothing to detach
    return Status(ErrorCode::kInvalidArgument,
                  "session " + impl->session_id() +
                      " already has a client on this connection");
  }
  return impl;
}

Client::Impl::Impl(ClientOptions options,
                   std::unique_ptr<client_internal::SessionJournal> journal,
                   std::shared_ptr<client_internal::Hub> hub)
    : options_(std::move(options)),
      incarnation_(journal->incarnation()),
      journal_id_(journal->journal_id()),
      journal_(std::move(journal)),
      hub_(std::move(hub)),
      wire_(*hub_),
      conn_(client_internal::LinkTimers(options_.heartbeat),
            // A restarted process returns at its first WELCOME.
            /*returning=*/incarnation_ > 1,
            // The retry jitter differs per process and session, no clock
            // read needed.
            journal_id_ ^ (incarnation_ << 32) ^
                std::hash<std::string>{}(options_.session_id)),
      // Seqs continue above both the journal's and the clock's floor: the
      // clock may be behind a session that issued faster than it ticks.
      core_(
          options_, *journal_, conn_, incarnation_, journal_id_, stats_, wire_,
          [this](Seq next) { SkipTo(next); },
          client_internal::TimeBasedFirstSeq(), Clock::now()) {
  limit_ = options_.max_outstanding;
  next_seq_ = core_.next_seq();
  outstanding_ = static_cast<std::uint32_t>(core_.pending_count());
}

Client::Impl::~Impl() {
  if (hub_ == nullptr) return;
  {
    std::unique_lock lock(mutex_);
    closing_ = true;
  }
  slot_cv_.notify_all();
  // The hub's thread commits, says GOODBYE and fails the waiters before this
  // returns; the hub itself goes with its last user.
  hub_->Detach(this);
}

bool Client::Impl::OnIoThread() const { return hub_->OnIoThread(); }

Client::Impl::TimePoint Client::Impl::DeadlineFrom(
    std::chrono::milliseconds deadline) const {
  return Clock::now() +
         (deadline.count() > 0 ? deadline : options_.default_deadline);
}

void Client::Impl::Enqueue(std::unique_lock<std::mutex>& lock, Command c) {
  // A call made while no other call of the session is in flight and the
  // I/O thread sleeps is journaled and sent on this thread: waking the I/O
  // thread for it would add a thread hand-off to the path of a synchronous
  // call. With calls in flight the I/O thread has answers coming and
  // batches the new calls with its turn (one commit and one send for many).
  const bool alone = std::holds_alternative<client_internal::CallCommand>(c) &&
                     outstanding_ == 1;
  queue_.push_back(std::move(c));
  lock.unlock();
  if (alone && hub_->SendOnCaller(this)) {
    stats_.calls_sent_by_caller.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Only a sleeping I/O thread needs the eventfd; an awake one takes the
  // queue in its next turn without a syscall from us.
  hub_->Notify(this);
}

Seq Client::Impl::IssueLocked(std::unique_lock<std::mutex>& lock,
                              std::string_view service,
                              std::string_view payload, Callback callback,
                              TimePoint deadline) {
  Seq seq = next_seq_++;
  ++outstanding_;
  stats_.calls.fetch_add(1, std::memory_order_relaxed);
  CallCommand c;
  c.seq = seq;
  c.service.assign(service);
  c.payload.assign(payload);
  c.callback = std::move(callback);
  c.deadline = deadline;
  Enqueue(lock, std::move(c));
  return seq;
}

namespace {

Status CheckCall(std::string_view service, std::string_view payload,
                 std::chrono::milliseconds deadline) {
  if (!IsValidServiceName(service)) {
    return Status(ErrorCode::kInvalidArgument,
                  "service must be 1..128 printable ASCII bytes");
  }
  if (payload.size() > CodecLimits().max_payload_bytes) {
    return Status(ErrorCode::kTooLarge, "payload over the message limit");
  }
  if (deadline.count() < 0) {
    return Status(ErrorCode::kInvalidArgument, "negative deadline");
  }
  return Status::Ok();
}

}  // namespace

Result<Seq> Client::Impl::CallAsync(std::string_view service,
                                    std::string_view payload, Callback callback,
                                    std::chrono::milliseconds deadline) {
  if (Status s = CheckCall(service, payload, deadline); !s.ok()) return s;
  TimePoint end = DeadlineFrom(deadline);
  std::unique_lock lock(mutex_);
  if (closing_) return Status(ErrorCode::kClosed, "client is closing");
  if (!failed_.ok()) return failed_;
  if (outstanding_ >= limit_) {
    return Status(ErrorCode::kLimitExceeded,
                  std::to_string(outstanding_) + " calls in flight");
  }
  return IssueLocked(lock, service, payload, std::move(callback), end);
}

Result<Reply> Client::Impl::Call(std::string_view service,
                                 std::string_view payload,
                                 std::chrono::milliseconds deadline) {
  if (Status s = CheckCall(service, payload, deadline); !s.ok()) return s;
  if (OnIoThread()) {
    return Status(ErrorCode::kInvalidArgument,
                  "Call from a callback would block the I/O thread");
  }
  TimePoint end = DeadlineFrom(deadline);
  auto done = std::make_shared<std::promise<Result<Reply>>>();
  auto outcome = done->get_future();
  {
    std::unique_lock lock(mutex_);
    slot_cv_.wait_until(lock, end, [&] {
      return closing_ || !failed_.ok() || outstanding_ < limit_;
    });
    if (closing_) return Status(ErrorCode::kClosed, "client is closing");
    if (!failed_.ok()) return failed_;
    if (outstanding_ >= limit_) {
      stats_.deadline_exceeded.fetch_add(1, std::memory_order_relaxed);
      return Status(ErrorCode::kDeadlineExceeded,
                    "no free slot within the deadline");
    }
    IssueLocked(
        lock, service, payload,
        [done](const Result<Reply>& r) { done->set_value(r); }, end);
  }
  // The I/O thread always answers: outcome, deadline or kClosed.
  return outcome.get();
}

std::vector<OperationInfo> Client::Impl::ListOperations() {
  if (OnIoThread()) return core_.List();
  auto done = std::make_shared<std::promise<std::vector<OperationInfo>>>();
  auto result = done->get_future();
  {
    std::unique_lock lock(mutex_);
    if (closing_) return {};
    Enqueue(lock, ListCommand{done});
  }
  return result.get();
}

Result<Reply> Client::Impl::Collect(Seq seq,
                                    std::chrono::milliseconds deadline) {
  if (OnIoThread()) {
    return Status(ErrorCode::kInvalidArgument,
                  "Collect from a callback would block the I/O thread");
  }
  auto done = std::make_shared<std::promise<Result<Reply>>>();
  auto outcome = done->get_future();
  if (Status s = CollectAsync(
          seq, [done](const Result<Reply>& r) { done->set_value(r); },
          deadline);
      !s.ok()) {
    return s;
  }
  return outcome.get();
}

Status Client::Impl::CollectAsync(Seq seq, Client::Callback callback,
                                  std::chrono::milliseconds deadline) {
  if (deadline.count() < 0) {
    return Status(ErrorCode::kInvalidArgument, "negative deadline");
  }
  std::unique_lock lock(mutex_);
  if (closing_) return Status(ErrorCode::kClosed, "client is closing");
  CollectCommand c;
  c.seq = seq;
  c.callback = std::move(callback);
  c.deadline = DeadlineFrom(deadline);
  Enqueue(lock, std::move(c));
  return Status::Ok();
}

Status Client::Impl::Forget(Seq seq) {
  if (OnIoThread()) return core_.Forget(seq);
  auto done = std::make_shared<std::promise<Status>>();
  auto result = done->get_future();
  {
    std::unique_lock lock(mutex_);
    if (closing_) return Status(ErrorCode::kClosed, "client is closing");
    Enqueue(lock, ForgetCommand{seq, done});
  }
  return result.get();
}

void Client::Impl::SetRecoveryCallback(
    std::function<void(const RecoveryEvent&)> cb) {
  auto shared =
      std::make_shared<const std::function<void(const RecoveryEvent&)>>(
          std::move(cb));
  {
    std::unique_lock lock(mutex_);
    recovery_cb_ = std::move(shared);
  }
  // The I/O thread picks it up with the next commands it takes.
  hub_->Notify(this);
}

ClientStats Client::Impl::stats() const {
  auto get = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  ClientStats s;
  s.calls = get(stats_.calls);
  s.completed = get(stats_.completed);
  s.requests_resent = get(stats_.requests_resent);
  s.responses_recovered = get(stats_.responses_recovered);
  s.in_doubt = get(stats_.in_doubt);
  s.duplicate_responses = get(stats_.duplicate_responses);
  s.state_exchanges = get(stats_.state_exchanges);
  s.deadline_exceeded = get(stats_.deadline_exceeded);
  s.malformed = get(stats_.malformed);
  s.welcomes = get(stats_.welcomes);
  s.calls_sent_by_caller = get(stats_.calls_sent_by_caller);
  return s;
}

// --- Client ---------------------------------------------------------------

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  auto impl = Impl::Create(std::move(options));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<Client>(new Client(std::move(impl).value()));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() = default;

Result<Seq> Client::CallAsync(std::string_view service,
                              std::string_view payload, Callback callback,
                              std::chrono::milliseconds deadline) {
  return impl_->CallAsync(service, payload, std::move(callback), deadline);
}

std::future<Result<Reply>> Client::CallFuture(
    std::string_view service, std::string_view payload,
    std::chrono::milliseconds deadline) {
  auto done = std::make_shared<std::promise<Result<Reply>>>();
  auto outcome = done->get_future();
  auto seq = impl_->CallAsync(
      service, payload, [done](const Result<Reply>& r) { done->set_value(r); },
      deadline);
  if (!seq.ok()) done->set_value(seq.status());
  return outcome;
}

Result<Reply> Client::Call(std::string_view service, std::string_view payload,
                           std::chrono::milliseconds deadline) {
  return impl_->Call(service, payload, deadline);
}

std::vector<OperationInfo> Client::ListOperations() const {
  return impl_->ListOperations();
}

Result<Reply> Client::Collect(Seq seq, std::chrono::milliseconds deadline) {
  return impl_->Collect(seq, deadline);
}

Status Client::CollectAsync(Seq seq, Callback callback,
                            std::chrono::milliseconds deadline) {
  return impl_->CollectAsync(seq, std::move(callback), deadline);
}

Status Client::Forget(Seq seq) { return impl_->Forget(seq); }

void Client::SetRecoveryCallback(std::function<void(const RecoveryEvent&)> cb) {
  impl_->SetRecoveryCallback(std::move(cb));
}

ClientStats Client::stats() const { return impl_->stats(); }

const std::string& Client::session_id() const { return impl_->session_id(); }

Incarnation Client::incarnation() const { return impl_->incarnation(); }

}  // namespace rejoin
