// The shared I/O thread of client sessions (hub.h). Each loop turn: admit
// new members, take queued commands, read and route every waiting message,
// run timers, then commit, send and deliver for every member, phase by
// phase. Nothing of a turn leaves the process before the commit that
// describes it.
#include "hub.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "client_impl.h"
#include "log.h"
#include "rejoin/proto/codec.h"

namespace rejoin::client_internal {

namespace {

std::chrono::milliseconds CeilMs(Hub::Clock::duration d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

// A zmq socket's readiness (ZMQ_POLLIN / ZMQ_POLLOUT), -1 if the socket is
// gone. Reading it also runs the socket's pending commands, which may
// consume the signal of its file descriptor: whoever reads it, or sends or
// receives on the socket, must act on what it says rather than wait for
// the descriptor.
int SocketEvents(void* socket) {
  int events = 0;
  std::size_t size = sizeof events;
  if (zmq_getsockopt(socket, ZMQ_EVENTS, &events, &size) != 0) return -1;
  return events;
}

int SocketFd(void* socket) {
  int fd = -1;
  std::size_t size = sizeof fd;
  if (zmq_getsockopt(socket, ZMQ_FD, &fd, &size) != 0) return -1;
  return fd;
}

}  // namespace

Result<std::shared_ptr<Hub>> Hub::Start(const std::string& endpoint,
                                        const CurveOptions& curve) {
  if (endpoint.empty()) {
    return Status(ErrorCode::kInvalidArgument, "endpoint is empty");
  }
  std::optional<transport::CurveKeys> keys;
  if (curve.enabled()) {
    Result<transport::CurveKeys> loaded = transport::LoadCurveKeys(curve);
    if (!loaded.ok()) return loaded.status();
    keys = std::move(*loaded);
  }
  std::shared_ptr<Hub> hub(new Hub(endpoint, std::move(keys)));
  hub->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (hub->wake_fd_ < 0) {
    return Status(ErrorCode::kIoError,
                  std::string("eventfd: ") + std::strerror(errno));
  }
  try {
    // The socket is created and connected here so that a bad endpoint is
    // reported at once; the thread start below is the memory barrier zmq
    // asks for when a socket moves to another thread.
    if (Status s = hub->OpenLink(); !s.ok()) return s;
    hub->thread_ = std::thread([raw = hub.get()] { raw->Run(); });
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kIoError, std::string("zmq: ") + e.what());
  } catch (const std::system_error& e) {
    return Status(ErrorCode::kIoError, std::string("thread: ") + e.what());
  }
  return hub;
}

Hub::Hub(std::string endpoint, std::optional<transport::CurveKeys> curve)
    : endpoint_(std::move(endpoint)), curve_(std::move(curve)) {
  last_send_ = last_recv_ = Clock::now();
}

Hub::~Hub() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
  }
  link_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Hub::OpenLink() {
  // ZMQ_IMMEDIATE (set by the Link) keeps a REQUEST that cannot leave in
  // its member's send queue; it goes after the next WELCOME.
  Result<std::unique_ptr<transport::Link>> link =
      transport::Link::Open(context_, endpoint_, curve_ ? &*curve_ : nullptr);
  if (!link.ok()) return link.status();
  link_ = std::move(*link);
  return Status::Ok();
}

// --- Application threads

void Hub::Wake() {
  std::uint64_t one = 1;
  // A failed write only means the counter is already non-zero.
  (void)!::write(wake_fd_, &one, sizeof one);
}
// ------------------------------------------------------

bool Hub::Attach(Client::Impl* member) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || !claimed_.emplace(member->session_id(), member).second) {
      return false;
    }
    ++sessions_;
    attaching_.push_back(member);
    wake = std::exchange(sleeping_, false);
  }
  if (wake) Wake();
  return true;
}

void Hub::Detach(Client::Impl* member) {
  std::unique_lock lock(mutex_);
  detaching_.push_back(member);
  const bool wake = std::exchange(sleeping_, false);
  if (wake) Wake();
  detached_cv_.wait(lock, [&] {
    return std::find(detached_.begin(), detached_.end(), member) !=
           detached_.end();
  });
  detached_.erase(std::find(detached_.begin(), detached_.end(), member));
  claimed_.erase(member->session_id());
  --sessions_;
}

void Hub::Notify(Client::Impl* member) {
  // One entry in ready_ per member and turn: the flag is cleared when the
  // hub takes the member's commands, which it does after clearing it, so a
  // command queued in between is either seen there or notified again.
  if (member->notified_.exchange(true)) return;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    ready_.push_back(member);
    wake = std::exchange(sleeping_, false);
  }
  if (wake) Wake();
}

std::size_t Hub::sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

// --- Sending
// ------------------------------------------------------------------

bool Hub::Send(const Message& m, zmq::message_t* payload) {
  if (!link_) return false;
  if (link_->Send(m, payload) != transport::SendResult::kOk) return false;
  last_send_ = Clock::now();
  return true;
}

bool Hub::Send(transport::Batch& batch) {
  if (!link_) return false;
  if (link_->Send(batch) != transport::SendResult::kOk) return false;
  last_send_ = Clock::now();
  return true;
}

// --- Connection lifecycle ---------------------------------------------------

void Hub::Reopen(const char* why) {
  Log().info("connection to {}: reopening ({})", endpoint_, why);
  link_.reset();
  if (Status s = OpenLink(); !s.ok()) {
    Log().error("connection to {}: cannot reopen socket: {}", endpoint_,
                s.ToString());
  }
  for (Client::Impl* m : members_) m->OnLinkReopened(why);
}

void Hub::ReadMonitor() {
  while (link_) {
    const transport::Link::Event e = link_->ReadEvent();
    switch (e) {
      case transport::Link::Event::kNone:
        return;
      case transport::Link::Event::kConnected:
      case transport::Link::Event::kDisconnected:
        for (Client::Impl* m : members_) m->OnLinkEvent(e);
        break;
      case transport::Link::Event::kClosed:
        Reopen("connection monitor closed");
        return;
    }
  }
}

// --- The loop
// -------------------------------------------------------------------

void Hub::Run() {
  loop_lock_.lock();
  bool running = true;
  while (running) {
    try {
      running = RunTurn();
    } catch (const zmq::error_t& e) {
      // The one place where zmq exceptions from the loop end up.
      if (e.num() == ETERM) break;
      Log().warn("connection to {}: zmq error in I/O loop: {}", endpoint_,
                 e.what());
    }
  }
  // Whoever is still attached shuts down now (the Client objects detach
  // before the hub goes, so this is only a safety net).
  std::vector<Client::Impl*> rest = members_;
  Release(rest);
  // A short linger lets the members' GOODBYEs reach the broker, so that a
  // restarted process of their sessions is not refused as a duplicate.
  if (link_) link_->SetLinger(std::chrono::milliseconds(100));
  loop_lock_.unlock();
}

bool Hub::Sleep(int timeout_ms, bool* monitor_ready) {
  // The sockets are polled through their file descriptors, as zmq_poll
  // does, but with the loop lock released, so that SendOnCaller may use
  // the socket meanwhile. A descriptor signals only a change: what is
  // ready already is read from ZMQ_EVENTS first.
  pollfd fds[4];
  nfds_t n = 0;
  if (link_) {
    const int events = SocketEvents(link_->socket_handle());
    const int monitor = SocketEvents(link_->monitor_handle());
    if ((events < 0 || monitor < 0) && zmq_errno() == ETERM) return false;
    if ((events > 0 && (events & ZMQ_POLLIN) != 0) ||
        (events > 0 && sleep_wants_out_ && (events & ZMQ_POLLOUT) != 0) ||
        (monitor > 0 && (monitor & ZMQ_POLLIN) != 0)) {
      timeout_ms = 0;
    }
    fds[n++] = {SocketFd(link_->socket_handle()), POLLIN, 0};
    fds[n++] = {SocketFd(link_->monitor_handle()), POLLIN, 0};
  }
  const nfds_t wake_index = n;
  fds[n++] = {wake_fd_, POLLIN, 0};
  nfds_t timer_index = n;
  if (timer_.fd() >= 0) fds[n++] = {timer_.fd(), POLLIN, 0};

  loop_lock_.unlock();
  const int rc = ::poll(fds, n, timeout_ms);
  const int poll_errno = errno;
  loop_lock_.lock();

  if (rc < 0 && poll_errno != EINTR) {
    Log().warn("connection to {}: poll: {}", endpoint_,
               std::strerror(poll_errno));
  }
  if (rc > 0 && (fds[wake_index].revents & POLLIN) != 0) {
    std::uint64_t count = 0;
    (void)!::read(wake_fd_, &count, sizeof count);
  }
  if (rc > 0 && timer_index < n && (fds[timer_index].revents & POLLIN) != 0) {
    timer_.Clear();
  }
  // The socket is read every turn anyway; the monitor only when it has an
  // event. Its descriptor may have signalled, or not (the loop never
  // sends on it, so only ZMQ_EVENTS above could have taken its signal).
  if (link_) {
    const int monitor = SocketEvents(link_->monitor_handle());
    if (monitor < 0 && zmq_errno() == ETERM) return false;
    *monitor_ready = monitor > 0 && (monitor & ZMQ_POLLIN) != 0;
  }
  return true;
}

bool Hub::SendOnCaller(Client::Impl* member) {
  // std::mutex may not be tried by its owner: the loop's own thread (a
  // callback making a call) queues, and the call leaves with its turn.
  if (OnIoThread()) return false;
  std::unique_lock loop(loop_mutex_, std::try_to_lock);
  if (!loop.owns_lock()) return false;
  {
    std::lock_guard lock(mutex_);
    if (!sleeping_ || stopping_ || !ready_.empty() || !attaching_.empty() ||
        !detaching_.empty()) {
      return false;
    }
  }
  if (!link_ || syncing_members_ > 0 || sleep_wants_out_ || link_->buffered() ||
      MemberFor(member->session_id()) != member) {
    return false;
  }
  const TimePoint now = Clock::now();
  member->TakeAndHandleCommands();
  member->Commit();
  member->Flush(now);
  bool wake = member->HasWorkForLoop();
  if (!wake) {
    // A message that arrived meanwhile may have been announced to this
    // send rather than to the sleeping poll.
    const int events = SocketEvents(link_->socket_handle());
    wake = events < 0 || (events & ZMQ_POLLIN) != 0;
  }
  if (!wake) {
    const TimePoint next = member->NextWakeup(now);
    if (next < sleep_until_) {
      // The loop's poll timeout was set before this call's resend time.
      if (timer_.fd() < 0) {
        wake = true;
      } else {
        timer_.ArmBy(next);
        sleep_until_ = next;
      }
    }
  }
  loop.unlock();
  if (wake) {
    bool asleep = false;
    {
      std::lock_guard lock(mutex_);
      asleep = std::exchange(sleeping_, false);
    }
    // Awake already, the loop takes the lock after this and runs its turn.
    if (asleep) Wake();
  }
  return true;
}

Hub::TimePoint Hub::NextWakeup(TimePoint now) const {
  TimePoint next = now + std::chrono::seconds(1);
  for (const Client::Impl* m : members_) {
    next = std::min(next, m->NextWakeup(now));
  }
  return next;
}

bool Hub::RunTurn() {
  TimePoint now = Clock::now();
  const TimePoint wakeup = NextWakeup(now);
  int timeout =
      wakeup <= now ? 0 : static_cast<int>(CeilMs(wakeup - now).count());
  // A wake-up this close is left to the timerfd: poll's millisecond
  // timeout would overshoot it by up to a millisecond.
  if (timeout > 0 && wakeup - now < kPreciseWakeup) timer_.ArmBy(wakeup);
  // Messages left in the reader by the last turn's budget are already here:
  // the socket will not announce them again.
  const bool unread = link_ && link_->buffered();
  {
    std::lock_guard lock(mutex_);
    if (!unread && ready_.empty() && attaching_.empty() && detaching_.empty() &&
        !stopping_) {
      sleeping_ = true;
    } else {
      timeout = 0;
    }
  }
  sleep_until_ = timeout == 0 ? now : wakeup;
  sleep_wants_out_ =
      std::any_of(members_.begin(), members_.end(),
                  [](const Client::Impl* m) { return m->WantsToSend(); });
  bool monitor_ready = false;
  if (!Sleep(timeout, &monitor_ready)) return false;
  std::vector<Client::Impl*> attached, detached;
  bool stopping = false;
  {
    std::lock_guard lock(mutex_);
    sleeping_ = false;
    attached.swap(attaching_);
    detached.swap(detaching_);
    stopping = stopping_;
  }
  Admit(attached);
  if (monitor_ready) ReadMonitor();

  TakeReady();
  ReadInbound();
  now = Clock::now();
  HandleTimers(now);
  // Outcomes are durable before anyone sees them. Members on one shared
  // journal: the first commit writes what all of them appended.
  for (Client::Impl* m : members_) m->Commit();
  for (Client::Impl* m : members_) m->Deliver();
  // Calls the callbacks just made (a pipelined application refilling its
  // window) leave with this turn's resends, in one batch, rather than after
  // another poll.
  TakeReady();
  if (syncing_members_ > 0) {
    // An fdatasync is long enough for more answers to arrive. Taken now,
    // their outcomes share the next commit with the calls just made, and
    // the calls their callbacks make leave with those: sessions answered a
    // little apart stay one group paying one fdatasync per step, instead of
    // splitting into groups that never merge again (16 sessions: 0.33 vs
    // 0.16 commits per call).
    ReadInbound();
    for (Client::Impl* m : members_) m->Commit();
    for (Client::Impl* m : members_) m->Deliver();
    TakeReady();
  }
  for (Client::Impl* m : members_) m->Commit();
  now = Clock::now();
  for (Client::Impl* m : members_) m->Flush(now);
  for (Client::Impl* m : members_) {
    m->Deliver();
    m->Compact();
    m->DropStaleResendTimers();
  }
  Release(detached);
  return !stopping;
}

void Hub::Admit(std::vector<Client::Impl*>& attached) {
  for (Client::Impl* m : attached) {
    members_.push_back(m);
    if (m->SyncsCommits()) ++syncing_members_;
    by_session_[m->session_id()] = m;
    m->Start();
  }
}

void Hub::Release(std::vector<Client::Impl*>& detached) {
  if (detached.empty()) return;
  for (Client::Impl* m : detached) {
    const auto gone = std::remove(members_.begin(), members_.end(), m);
    if (gone != members_.end() && m->SyncsCommits()) --syncing_members_;
    members_.erase(gone, members_.end());
    m->Shutdown();
    by_session_.erase(m->session_id());
  }
  {
    std::lock_guard lock(mutex_);
    // A member detached before it was admitted is in neither list.
    ready_.erase(std::remove_if(ready_.begin(), ready_.end(),
                                [&](Client::Impl* m) {
                                  return std::find(detached.begin(),
                                                   detached.end(),
                                                   m) != detached.end();
                                }),
                 ready_.end());
    detached_.insert(detached_.end(), detached.begin(), detached.end());
  }
  detached_cv_.notify_all();
}

void Hub::TakeReady() {
  turn_ready_.clear();
  {
    std::lock_guard lock(mutex_);
    turn_ready_.swap(ready_);
  }
  for (Client::Impl* m : turn_ready_) {
    m->notified_.store(false);
    m->TakeAndHandleCommands();
  }
}

// --- Inbound ----------------------------------------------------------------

void Hub::ReadInbound() {
  if (!link_) return;
  transport::Frames frames;
  for (int i = 0; i < kReadBudget; ++i) {
    transport::ReadResult r = link_->Read(frames);
    if (r != transport::ReadResult::kMessage) return;
    // One clock read per 64 messages, not per message: messages read
    // together arrived together (the RTT samples need tens of microseconds).
    if (i % 64 == 0) last_recv_ = Clock::now();
    Result<Message> m = transport::Decode(frames);
    if (!m.ok()) {
      for (Client::Impl* member : members_) member->CountMalformed();
      // Logged once: a broker that sends garbage would otherwise flood the
      // log; the counters keep the rest.
      if (!std::exchange(logged_malformed_, true)) {
        Log().warn("connection to {}: dropped undecodable message: {}",
                   endpoint_, m.status().ToString());
      }
      continue;
    }
    Route(*m, frames.payload);
  }
}

Client::Impl* Hub::MemberFor(const std::string& session) const {
  auto it = by_session_.find(session);
  return it == by_session_.end() ? nullptr : it->second;
}

// Session-scoped messages go to the session they name; connection-scoped
// ones (HEARTBEAT, GOODBYE, an ERROR naming no session) to every member. A
// message for a session that is not (or no longer) here is dropped: its
// Client closed, and the broker learns that from its GOODBYE.
void Hub::Route(Message& m, std::string_view payload) {
  auto to = [&](const std::string& session) {
    if (Client::Impl* member = MemberFor(session)) {
      member->HandleMessage(m, payload);
    }
  };
  switch (TypeOf(m)) {
    case MessageType::kWelcome:
      to(std::get<Welcome>(m).id);
      return;
    case MessageType::kResponse:
      to(std::get<Response>(m).session);
      return;
    case MessageType::kProbe:
      to(std::get<Probe>(m).session);
      return;
    case MessageType::kRecover: {
      // Each member reads only its own blocks.
      std::vector<std::string> named;
      for (const RecoverSession& rs : std::get<Recover>(m).sessions) {
        if (std::find(named.begin(), named.end(), rs.session) == named.end()) {
          named.push_back(rs.session);
          to(rs.session);
        }
      }
      return;
    }
    case MessageType::kError: {
      const Error& e = std::get<Error>(m);
      if (!e.session.empty()) {
        to(e.session);
        return;
      }
      break;
    }
    default:
      break;
  }
  // Handling never adds or removes members (that happens only in Admit and
  // Release), so the list can be walked directly.
  for (Client::Impl* member : members_) member->HandleMessage(m, payload);
}

// --- Timers -----------------------------------------------------------------

void Hub::HandleTimers(TimePoint now) {
  // Each member's state machine judges the connection's heartbeat and
  // silence; the first to ask for a HEARTBEAT sends it, and the others
  // then see it in last_send().
  for (Client::Impl* m : members_) m->HandleTimers(now);
}

}  // namespace rejoin::client_internal

namespace rejoin {

Result<std::shared_ptr<ClientConnection>> ClientConnection::Open(
    const std::string& endpoint, const CurveOptions& curve) {
  auto hub = client_internal::Hub::Start(endpoint, curve);
  if (!hub.ok()) return hub.status();
  return std::shared_ptr<ClientConnection>(
      new ClientConnection(std::move(hub).value()));
}

ClientConnection::ClientConnection(std::shared_ptr<client_internal::Hub> hub)
    : hub_(std::move(hub)) {}

ClientConnection::~ClientConnection() = default;

const std::string& ClientConnection::endpoint() const {
  return hub_->endpoint();
}

std::size_t ClientConnection::sessions() const { return hub_->sessions(); }

}  // namespace rejoin
