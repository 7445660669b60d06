// The broker's I/O shell: the ROUTER socket and its poll loop, decoding,
// per-connection batches, the roster file, Stop(), the status handoff to
// other threads, and the seam where tests and benchmarks lose messages on
// purpose. Every protocol decision is BrokerCore's (core/broker_core.h): the
// shell hands it each decoded message with the connection it came from and
// the time, runs its timers, and sends what it put in the outbox.
#include "rejoin/broker/broker.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "core/broker_core.h"
#include "curve_gate.h"
#include "idle_shedder.h"
#include "rejoin/broker/fault_injection.h"
#include "rejoin/proto/codec.h"
#include "rejoin/transport/curve.h"
#include "rejoin/transport/link.h"
#include "rejoin/transport/wire.h"
#include "roster.h"

namespace rejoin {
namespace {

using broker_internal::BrokerCore;
using broker_internal::Clock;
using broker_internal::Time;
using transport::Frames;
using transport::SendResult;

// Frames larger than this never reach the decoder: libzmq drops the
// connection of a peer that sends one. Below it, payloads over
// max_message_bytes are answered TOO_LARGE.
constexpr std::int64_t kHardFrameSlack = 64 * 1024;
// Messages handled per loop turn before timers get a look in and the turn's
// batches leave. Small turns keep the processes of a pipeline working at the
// same time: with 256 a window of 64 calls travelled as one convoy that only
// one process at a time had work for (98 k vs 106 k calls/s at window 64).
constexpr int kBatch = 32;
// A TCP peer that has not completed the ZeroMQ handshake by then is closed.
constexpr int kHandshakeIvlMs = 5000;

// Whether a tcp endpoint's host is a loopback address: binding anything else
// without CURVE needs BrokerOptions::insecure. Other transports stay on the
// machine (ipc files have their own permissions).
bool LoopbackOnly(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return true;
  const std::string address = endpoint.substr(6);
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

Epoch DrawEpoch(Epoch wanted) {
  if (wanted != 0) return wanted;
  std::random_device rd;
  const Epoch epoch = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return epoch == 0 ? 1 : epoch;
}

// The message Reader::Next handed out last, as the core takes it.
class ReaderFrames final : public broker_internal::InFrames {
 public:
  ReaderFrames(const Frames& frames, transport::Reader& reader)
      : frames_(frames), reader_(reader) {}
  std::string_view header() const override { return frames_.header; }
  std::string_view payload() const override { return frames_.payload; }
  zmq::message_t TakeHeader() override { return reader_.TakeHeader(); }
  zmq::message_t TakePayload() override { return reader_.TakePayload(); }

 private:
  const Frames& frames_;
  transport::Reader& reader_;
};

// The roster file through roster.h.
class RosterFile final : public broker_internal::RosterStore {
 public:
  explicit RosterFile(std::string path) : path_(std::move(path)) {}
  Status Write(const broker_internal::RosterContents& contents) override {
    return broker_internal::WriteRoster(path_, contents);
  }
  bool Remove() override {
    return ::unlink(path_.c_str()) == 0 || errno == ENOENT;
  }
  const std::string& name() const override { return path_; }

 private:
  std::string path_;
};

}  // namespace

class Broker::Impl final : public broker_internal::Outbox {
 public:
  Impl(BrokerOptions options, FaultInjection faults)
      : options_(std::move(options)),
        faults_(std::move(faults)),
        socket_(context_, zmq::socket_type::router),
        monitor_(context_, zmq::socket_type::pair),
        reader_(/*routed=*/true,
                /*authenticated=*/!options_.keys_file.empty()),
        rng_(faults_.seed),
        loss_(faults_.loss),
        core_(options_, DrawEpoch(options_.epoch), *this) {}

  Status Bind();
  Status Run();
  Status ReloadKeys();
  void Stop() { stop_.store(true); }
  BrokerStats Snapshot() const;
  Result<BrokerStatus> TakeStatus(std::chrono::milliseconds timeout) const;
  Epoch epoch() const { return core_.epoch(); }
  std::string bound() const { return bound_; }

  // ---- Outbox -------------------------------------------------------------
  // Messages are queued per peer and leave as one batch per peer at the end
  // of the turn (FlushOut); a peer found gone then is handed to the core.
  void Send(const std::string& route, const Message& m) override {
    out_[route].Add(m);
  }
  // REQUEST/RESPONSE on their way to a peer: subject to injected loss. The
  // frames stay the core's (Batch::AddFrames copies or shares them).
  void Envelope(const std::string& route, zmq::message_t& header,
                zmq::message_t& payload) override;
  void Forward(const std::string& route, std::string_view header) override {
    out_[route].AddEncoded(header, {}, false);
  }
  bool Waiting(const std::string& route) const override {
    auto it = out_.find(route);
    return it != out_.end() && !it->second.empty();
  }
  bool SendNow(const std::string& route, const Message& m) override;

 private:
  // An envelope the injected loss drew under FaultInjection::redeliver.
  struct Redelivery {
    std::string route;
    zmq::message_t header;
    zmq::message_t payload;
  };
  void FlushOut(Time now);
  // Asks the test hook whether to lose this REQUEST/RESPONSE/ACK.
  bool Faulted(FaultPoint::Where where, const Message& m);
  // Reads the ROUTER's monitor events: counts and logs failed accepts, and
  // tells the shedder (and the CURVE gate) which connections come and go.
  void ReadMonitor();
  // Shuts down the connections the shedder found idle, if any are due.
  void ShedIdle(Time now);
  // A reloaded keys file waiting goes into force.
  void TakeReload(Time now);
  // Closes a connection whose key was revoked and drops what it held.
  void CloseRevoked(const std::string& route, int fd, Time now);
  // status(): another thread asks (status_wanted_) and waits; the broker's
  // thread answers between two turns.
  void PublishStatus(Time now);

  BrokerOptions options_;
  // The seam where tests and benchmarks lose messages (fault_injection.h).
  FaultInjection faults_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  // The ROUTER's monitor: failed accepts (descriptors exhausted), FLOWS §10.
  zmq::socket_t monitor_;
  transport::Reader reader_;
  // CURVE (BrokerOptions::keys_file); nullptr without.
  std::unique_ptr<broker_internal::CurveGate> gate_;
  std::unordered_map<std::string, transport::Batch> out_;  // FlushOut
  std::string bound_;
  CodecLimits limits_;
  std::mt19937_64 rng_;
  std::bernoulli_distribution loss_;
  std::atomic<std::uint64_t> injected_drops_{0};
  std::vector<Redelivery> redeliver_;  // sent with the next turn
  std::atomic<std::uint64_t> accept_failures_{0};
  std::atomic<std::uint64_t> connections_shed_{0};
  Time accept_failure_logged_{};
  // Idle connections shut down when descriptors run out (FLOWS.md §10):
  // live peers speak at least once per heartbeat interval.
  broker_internal::IdleShedder shedder_{3 * options_.heartbeat};
  std::unique_ptr<RosterFile> roster_file_;
  broker_internal::RosterLock roster_lock_;
  std::atomic<bool> stop_{false};
  mutable std::atomic<bool> status_wanted_{false};
  mutable std::mutex status_mutex_;
  mutable std::condition_variable status_cv_;
  bool running_ = false;                 // under status_mutex_
  std::uint64_t status_generation_ = 0;  // under status_mutex_
  BrokerStatus status_;                  // under status_mutex_
  BrokerCore core_;
};

Status Broker::Impl::Bind() {
  if (Status s = transport::CheckEndpoint(options_.endpoint, /*bind=*/true);
      !s.ok()) {
    return s;
  }
  std::optional<transport::KeyPair> curve_keys;
  if (options_.keys_file.empty() != options_.curve_key_file.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "CURVE needs both the broker's key pair file and the keys "
                  "file");
  }
  if (!options_.keys_file.empty()) {
    if (!transport::CurveAvailable()) {
      return Status(ErrorCode::kUnavailable,
                    "libzmq was built without CURVE (libsodium)");
    }
    Result<transport::KeyPair> keys =
        transport::ReadKeyFile(options_.curve_key_file, /*need_secret=*/true);
    if (!keys.ok()) return keys.status();
    curve_keys = std::move(*keys);
    // The ZAP handler is bound before the ROUTER (CurveGate::Open).
    auto gate = broker_internal::CurveGate::Open(context_, options_.keys_file);
    if (!gate.ok()) return gate.status();
    gate_ = std::move(*gate);
    core_.SetAccessPolicy(&gate_->policy());
    spdlog::info("rejoin-broker: CURVE on, public key {}, {} keys in {}",
                 curve_keys->public_key, gate_->policy().keys(),
                 options_.keys_file);
  } else if (!LoopbackOnly(options_.endpoint)) {
    if (!options_.insecure) {
      return Status(ErrorCode::kInvalidArgument,
                    options_.endpoint +
                        " is not a loopback address: without CURVE anyone "
                        "who reaches it can act as any client or server "
                        "(give a key pair and keys file, or say insecure)");
    }
    spdlog::warn(
        "rejoin-broker: INSECURE: {} is reachable beyond this machine with "
        "no encryption and no authentication",
        options_.endpoint);
  }
  try {
    socket_.set(zmq::sockopt::router_mandatory, 1);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndhwm, 100000);
    socket_.set(zmq::sockopt::rcvhwm, 100000);
    socket_.set(zmq::sockopt::maxmsgsize,
                static_cast<std::int64_t>(options_.max_message_bytes) * 4 +
                    kHardFrameSlack);
    // A TCP peer that never completes the ZeroMQ handshake holds a
    // descriptor for no more than this.
    socket_.set(zmq::sockopt::handshake_ivl, kHandshakeIvlMs);
    const std::string monitor =
        "inproc://rejoin-broker-monitor-" +
        std::to_string(reinterpret_cast<std::uintptr_t>(this));
    if (zmq_socket_monitor(socket_.handle(), monitor.c_str(),
                           ZMQ_EVENT_ACCEPT_FAILED | ZMQ_EVENT_ACCEPTED |
                               ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED) !=
        0) {
      throw zmq::error_t();
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(monitor);
    if (gate_) {
      if (Status s = transport::SetCurveServer(socket_, *curve_keys); !s.ok()) {
        return s;
      }
    }
    socket_.bind(options_.endpoint);
    bound_ = socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kIoError,
                  "cannot bind " + options_.endpoint + ": " + e.what());
  }
  limits_.max_payload_bytes =
      static_cast<std::size_t>(options_.max_message_bytes) * 4 +
      static_cast<std::size_t>(kHardFrameSlack);
  if (options_.roster.empty()) return Status::Ok();
  auto lock = broker_internal::RosterLock::Acquire(options_.roster);
  if (!lock.ok()) return lock.status();
  roster_lock_ = std::move(*lock);
  roster_file_ = std::make_unique<RosterFile>(options_.roster);
  return core_.KeepRoster(*roster_file_,
                          broker_internal::ReadRoster(options_.roster));
}

Status Broker::Impl::Run() {
  const Time start = Clock::now();
  Time next_tick = start;
  spdlog::info("rejoin-broker: serving {} epoch {:016x} grace {} ms", bound_,
               core_.epoch(), options_.grace.count());
  core_.Start(start);
  const auto tick_every =
      std::max(std::chrono::milliseconds(1),
               std::min(options_.probe, options_.heartbeat) / 4);

  {
    std::lock_guard lock(status_mutex_);
    running_ = true;
  }
  Frames frames;
  while (!stop_.load(std::memory_order_relaxed)) {
    Time now = Clock::now();
    // Rounded up: rounding down would turn the last partial millisecond
    // before every tick into a busy loop of zero-timeout polls.
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - now);
    wait = std::clamp(wait, std::chrono::milliseconds(0),
                      std::chrono::milliseconds(20));
    // The rest of a batch the last turn did not finish is already here: the
    // socket will not announce it again.
    if (reader_.buffered()) wait = std::chrono::milliseconds(0);
    // The oracle's held envelopes go with the next turn, which comes now.
    if (!redeliver_.empty()) wait = std::chrono::milliseconds(0);
    if (const Time held_due = core_.held_due(); held_due != Time::max()) {
      wait =
          std::min(wait, std::max(std::chrono::milliseconds(0),
                                  std::chrono::ceil<std::chrono::milliseconds>(
                                      held_due - now)));
    }
    zmq::pollitem_t items[] = {
        {socket_.handle(), 0, ZMQ_POLLIN, 0},
        {monitor_.handle(), 0, ZMQ_POLLIN, 0},
        {gate_ ? gate_->zap_handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, gate_ ? 3 : 2, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status(ErrorCode::kIoError, std::string("poll: ") + e.what());
    }
    if ((items[1].revents & ZMQ_POLLIN) != 0) ReadMonitor();
    now = Clock::now();
    for (Redelivery& r : redeliver_) {
      out_[r.route].AddFrames(r.header, r.payload, true);
    }
    redeliver_.clear();
    if (gate_) {
      // A reload first: a handshake that began after ReloadKeys returned
      // is judged by the new file.
      if (gate_->reload_waiting()) TakeReload(now);
      if ((items[2].revents & ZMQ_POLLIN) != 0) gate_->AnswerZap();
    }
    for (int i = 0; i < kBatch; ++i) {
      auto r = reader_.Next(socket_, frames);
      if (r == transport::ReadResult::kNothing) break;
      if (r == transport::ReadResult::kClosed) {
        return Status(ErrorCode::kClosed, "socket closed");
      }
      if (shedder_.listening()) shedder_.Heard(frames.source_fd);
      Result<Message> decoded = transport::Decode(frames, limits_);
      if (!decoded.ok()) {
        core_.OnUndecodable(
            frames.route, decoded.status(),
            frames.count > 0 ? frames.header : std::string_view());
        continue;
      }
      if (faults_.fault && Faulted(FaultPoint::Where::kArrived, *decoded)) {
        continue;
      }
      std::string_view principal;
      if (gate_) {
        const std::string* p = gate_->PrincipalOf(frames);
        if (p == nullptr) {  // its key was revoked
          CloseRevoked(frames.route, frames.source_fd, now);
          continue;
        }
        principal = *p;
      }
      ReaderFrames in(frames, reader_);
      core_.OnMessage(frames.route, *decoded, in, now, principal);
    }
    if (now >= next_tick) {
      core_.Tick(now);
      next_tick = now + tick_every;
      ShedIdle(now);
    }
    FlushOut(now);
    if (status_wanted_.load(std::memory_order_relaxed)) PublishStatus(now);
  }
  {
    std::lock_guard lock(status_mutex_);
    running_ = false;
  }
  status_cv_.notify_all();
  core_.Shutdown();
  FlushOut(Clock::now());
  return Status::Ok();
}

Result<BrokerStatus> Broker::Impl::TakeStatus(
    std::chrono::milliseconds timeout) const {
  std::unique_lock lock(status_mutex_);
  if (!running_) {
    return Status(ErrorCode::kUnavailable, "broker is not running");
  }
  const std::uint64_t generation = status_generation_;
  status_wanted_.store(true, std::memory_order_relaxed);
  status_cv_.wait_for(lock, timeout, [&] {
    return status_generation_ != generation || !running_;
  });
  if (status_generation_ == generation) {
    return Status(ErrorCode::kUnavailable, "broker did not answer in time");
  }
  return status_;
}

void Broker::Impl::PublishStatus(Time now) {
  BrokerStatus st;
  core_.FillStatus(st, now);
  st.stats = Snapshot();
  st.endpoint = bound_;
  {
    std::lock_guard lock(status_mutex_);
    status_ = std::move(st);
    ++status_generation_;
    status_wanted_.store(false, std::memory_order_relaxed);
  }
  status_cv_.notify_all();
}

Status Broker::Impl::ReloadKeys() {
  if (!gate_) {
    return Status(ErrorCode::kUnavailable,
                  "the broker runs without CURVE: no keys file to reload");
  }
  return gate_->Reload();
}

void Broker::Impl::TakeReload(Time now) {
  const auto revoked = gate_->TakeReload();
  core_.SetAccessPolicy(&gate_->policy());
  for (const auto& [route, fd] : revoked) CloseRevoked(route, fd, now);
}

void Broker::Impl::CloseRevoked(const std::string& route, int fd, Time now) {
  gate_->Close(route, fd);
  out_.erase(route);
  core_.OnGone(route, now);
}

BrokerStats Broker::Impl::Snapshot() const {
  BrokerStats s = core_.Snapshot();
  s.revoked_messages = gate_ ? gate_->revoked_messages() : 0;
  s.injected_drops = injected_drops_.load(std::memory_order_relaxed);
  s.accept_failures = accept_failures_.load(std::memory_order_relaxed);
  s.connections_shed = connections_shed_.load(std::memory_order_relaxed);
  return s;
}

void Broker::Impl::FlushOut(Time now) {
  core_.EndTurn(now);
  // Each peer keeps its batch (and its buffer) while it is busy; a peer with
  // nothing to send since the last flush is dropped from the map.
  // A send that finds a server's connection gone marks it dead, which may
  // move its operations elsewhere and so queue more: another round sends
  // those (a few rounds at most; anything left goes with the next turn).
  for (int round = 0; round < 4; ++round) {
    std::vector<std::string> gone;
    for (auto it = out_.begin(); it != out_.end();) {
      if (it->second.empty()) {
        it = out_.erase(it);
        continue;
      }
      if (it->second.Send(socket_, it->first) == SendResult::kUnreachable) {
        gone.push_back(it->first);
      }
      ++it;
    }
    if (gone.empty()) return;
    for (const std::string& route : gone) core_.OnGone(route, now);
  }
}

bool Broker::Impl::SendNow(const std::string& route, const Message& m) {
  // A send processes libzmq's pending commands only now and then, so the
  // pipe of a connection that closed a moment ago (a process killed and
  // started again) may still take the message. Reading ZMQ_EVENTS
  // processes them all first.
  (void)socket_.get(zmq::sockopt::events);
  return transport::Send(socket_, route, m) != SendResult::kUnreachable;
}

void Broker::Impl::Envelope(const std::string& route, zmq::message_t& header,
                            zmq::message_t& payload) {
  if (faults_.loss > 0.0 && loss_(rng_)) {
    injected_drops_.fetch_add(1, std::memory_order_relaxed);
    if (faults_.redeliver) {
      redeliver_.push_back(
          {route, transport::Share(header), transport::Share(payload)});
    }
    return;
  }
  if (faults_.fault) {
    auto m = DecodeHeader(transport::View(header), 2, payload.size(), limits_);
    if (m.ok() && Faulted(FaultPoint::Where::kLeaving, *m)) return;
  }
  out_[route].AddFrames(header, payload, true);
}

bool Broker::Impl::Faulted(FaultPoint::Where where, const Message& m) {
  FaultPoint point{where, TypeOf(m), {}, 0};
  if (const auto* req = std::get_if<Request>(&m)) {
    point.session = req->session;
    point.seq = req->seq;
  } else if (const auto* resp = std::get_if<Response>(&m)) {
    point.session = resp->session;
    point.seq = resp->seq;
  } else if (const auto* ack = std::get_if<Ack>(&m)) {
    point.session = ack->session;
    point.seq = ack->completed_watermark;
  } else {
    return false;
  }
  if (!faults_.fault(point)) return false;
  injected_drops_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Broker::Impl::ReadMonitor() {
  try {
    for (;;) {
      zmq::message_t event;
      if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
      // Two frames: {uint16 event, uint32 value} and the endpoint.
      while (monitor_.get(zmq::sockopt::rcvmore) != 0) {
        zmq::message_t rest;
        (void)monitor_.recv(rest, zmq::recv_flags::none);
      }
      if (event.size() < sizeof(std::uint16_t) + sizeof(std::uint32_t)) {
        continue;
      }
      std::uint16_t id = 0;
      std::uint32_t value = 0;
      std::memcpy(&id, event.data(), sizeof(id));
      std::memcpy(&value, static_cast<const char*>(event.data()) + sizeof(id),
                  sizeof(value));
      const Time now = Clock::now();
      if (id == ZMQ_EVENT_ACCEPTED) {
        shedder_.Accepted(static_cast<int>(value), now);
        continue;
      }
      if (id == ZMQ_EVENT_DISCONNECTED || id == ZMQ_EVENT_CLOSED) {
        shedder_.Closed(static_cast<int>(value));
        if (gate_) gate_->Disconnected(static_cast<int>(value));
        continue;
      }
      if (id != ZMQ_EVENT_ACCEPT_FAILED) continue;
      accept_failures_.fetch_add(1, std::memory_order_relaxed);
      shedder_.AcceptFailed(now);
      if (now - accept_failure_logged_ >= std::chrono::seconds(1)) {
        accept_failure_logged_ = now;
        spdlog::error(
            "rejoin-broker: cannot accept a connection: {} ({} failed "
            "accepts so far); raise the descriptor limit",
            std::strerror(static_cast<int>(value)),
            accept_failures_.load(std::memory_order_relaxed));
      }
    }
  } catch (const zmq::error_t&) {
  }
}

void Broker::Impl::ShedIdle(Time now) {
  const std::vector<int> idle = shedder_.Due(now);
  if (idle.empty()) return;
  // libzmq owns these descriptors: shutting them down (not closing them)
  // makes it see the connection end and clean up, as if the peer had left.
  for (int fd : idle) (void)::shutdown(fd, SHUT_RDWR);
  connections_shed_.fetch_add(idle.size(), std::memory_order_relaxed);
  spdlog::error(
      "rejoin-broker: descriptors exhausted: shut down {} connections silent "
      "for {} ms ({} shed so far, {} open); raise the descriptor limit",
      idle.size(), 3 * options_.heartbeat.count(),
      connections_shed_.load(std::memory_order_relaxed), shedder_.open());
}

// ===========================================================================
// Broker
// ===========================================================================

Result<std::unique_ptr<Broker>> Broker::Bind(BrokerOptions options) {
  return Bind(std::move(options), FaultInjection{});
}

Result<std::unique_ptr<Broker>> Broker::Bind(BrokerOptions options,
                                             FaultInjection faults) {
  if (options.heartbeat.count() <= 0 || options.probe.count() <= 0 ||
      options.grace.count() < 0 || options.lease.count() <= 0) {
    return Result<std::unique_ptr<Broker>>(
        ErrorCode::kInvalidArgument, "timers must be positive (grace >= 0)");
  }
  if (faults.loss < 0.0 || faults.loss >= 1.0) {
    return Result<std::unique_ptr<Broker>>(ErrorCode::kInvalidArgument,
                                           "injected loss must be in [0, 1)");
  }
  if (options.max_message_bytes == 0 || options.max_outstanding == 0 ||
      options.max_sessions == 0 || options.max_queue == 0 ||
      options.max_sessions_per_connection == 0 ||
      options.max_reported_sessions_per_server == 0 ||
      options.max_session_unacked == 0 || options.max_session_bytes == 0 ||
      options.max_queue_bytes == 0 || options.max_memory_bytes == 0 ||
      options.reported_session_expiry.count() <= 0) {
    return Result<std::unique_ptr<Broker>>(ErrorCode::kInvalidArgument,
                                           "limits must be at least 1");
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(faults));
  if (Status s = impl->Bind(); !s.ok()) {
    return Result<std::unique_ptr<Broker>>(std::move(s));
  }
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Broker::~Broker() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

Status Broker::Run() { return impl_->Run(); }

void Broker::Start() {
  thread_ = std::thread([this] {
    Status s = impl_->Run();
    if (!s.ok()) spdlog::error("rejoin-broker: {}", s.ToString());
  });
}

void Broker::Stop() { impl_->Stop(); }

BrokerStats Broker::stats() const { return impl_->Snapshot(); }

Result<BrokerStatus> Broker::status(std::chrono::milliseconds timeout) const {
  return impl_->TakeStatus(timeout);
}

Epoch Broker::epoch() const { return impl_->epoch(); }

std::string Broker::bound_endpoint() const { return impl_->bound(); }

Status Broker::ReloadKeys() { return impl_->ReloadKeys(); }

}  // namespace rejoin
