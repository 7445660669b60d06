// The broker's I/O shell and routing state (libproto/FLOWS.md). One thread
// owns the ROUTER socket and every table below; the breakpoint decision comes
// from rejoin::proto, and this file only gathers its inputs and carries out
// its actions.
//
// Tables:
//   sessions_  session id -> the client holder and the operations the broker
//              tracks for it (dispatched, queued, held, answered)
//   servers_   server id -> the server holder, its services and credit
//   services_  service name -> registered servers (round robin) and a queue
//   routes_    routing id -> what the connection holds: one server id, or
//              the client sessions it carries (one or many), with the
//              connection's liveness, which all its sessions share
// A message about a session is accepted from a connection when the
// session's holder route is that connection: one lookup in sessions_, never
// a walk over the connection's sessions. A client connection's list is
// walked only for events of the whole connection: its silence, its loss, a
// GOODBYE without an id, the broker's own GOODBYE.
// A tracked operation keeps zero-copy references to its request frames until
// it is answered, then to its response frames until the client's watermark
// passes it, so most recovery needs nothing from the endpoints.
//
// The only file the broker writes is the optional roster (roster.h): the
// server ids it has welcomed, so that after a restart the grace period can
// end once they have all reported. Nothing else depends on it.
#include "rejoin/broker/broker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "event_log.h"
#include "forgotten.h"
#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/codec.h"
#include "rejoin/proto/metrics.h"
#include "rejoin/proto/request_digest.h"
#include "rejoin/transport/link.h"
#include "rejoin/transport/wire.h"
#include "roster.h"

namespace rejoin {
namespace {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using broker_internal::ForgottenSessions;
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
// Services that requests named but no server has registered, at most.
constexpr std::size_t kMaxUnregisteredServices = 1024;
// Sessions with no live client and nothing tracked are forgotten this long
// after their last activity or their death, whichever is later.
constexpr auto kIdleSessionExpiry = std::chrono::seconds(120);
// A TCP peer that has not completed the ZeroMQ handshake by then is closed.
constexpr int kHandshakeIvlMs = 5000;

struct Counters {
  std::atomic<std::uint64_t> requests{0}, responses{0}, forwarded_resends{0},
      responses_replayed{0}, replays_held{0}, probes{0}, recover_messages{0},
      state_exchanges{0}, moved{0}, answered_in_doubt{0}, answered_errors{0},
      injected_drops{0}, malformed{0}, bad_version{0}, unknown_type{0},
      too_large{0}, unknown_peer{0}, fenced{0}, duplicate_identity{0},
      protocol_violations{0}, probes_ended{0}, refused_session_quota{0},
      refused_sessions{0}, refused_reported_sessions{0}, refused_unacked{0},
      refused_queue_bytes{0}, refused_memory{0}, expired_reported_sessions{0},
      retained_bytes{0}, accept_failures{0}, orphans{0}, sessions{0},
      connections{0}, servers{0}, grace_ms{0}, grace_ended_early{0},
      roster_servers{0}, servers_silent{0}, forgotten_sessions{0},
      forgotten_dropped{0}, forgotten_routed{0}, forgotten_in_doubt{0},
      conflicts{0};
};

// Text a peer sent, made safe for one log line: every byte outside printable
// ASCII (newlines, terminal escapes, UTF-8) and the backslash are written as
// \xNN, and the result is cut at kMaxLoggedPeerText bytes of input, so no
// peer can forge or flood log lines.
constexpr std::size_t kMaxLoggedPeerText = 256;
std::string Printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min(text.size(), kMaxLoggedPeerText);
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out.push_back(static_cast<char>(b));
    } else {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  if (text.size() > n) out += "...";
  return out;
}

void Bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

// Who holds an id right now. A session's route is empty once it is on no
// connection (it left with GOODBYE, or its connection is gone); incarnation
// and journal id stay for fencing.
struct Holder {
  std::string route;
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
  bool alive = false;
  Time last_heard{};  // servers; a client connection keeps its own
  Time dead_since{};
};

enum class Phase : std::uint8_t {
  kQueued,        // waiting for a server with credit
  kHeldForGrace,  // an untracked resend during the grace period
  kDispatched,    // with `server`, unanswered
  kAnswered,      // response retained for resends
};

struct Track {
  Phase phase = Phase::kQueued;
  std::string service;  // empty when learned from a server's report
  std::string server;   // holder, once dispatched
  JournalId server_journal = 0;
  bool credit_taken = false;
  bool has_request = false;
  // The request's digest (service and payload), kept from the request into
  // the answer: a REQUEST reusing the seq for other content is answered
  // `conflict`, not with this answer. Unknown for operations only a
  // server's report told of.
  bool has_digest = false;
  std::uint64_t digest = 0;
  zmq::message_t request_header, request_payload;
  zmq::message_t response_header, response_payload;
  Time due{};         // next probe of a dispatched operation
  Time dispatched{};  // the latest dispatch, for the latency histogram
  // The server's answer to the last probe of this operation, and how many
  // probes in a row gave it (DecisionContext::same_answers).
  ServerOpView last_answer;
  std::uint32_t same_answers = 0;
};

struct Session {
  SessionId id;
  Holder holder;
  JournalId previous_journal = 0;
  std::map<Seq, Track> ops;
  std::set<std::string> servers;  // every server that held one of its ops
  std::vector<Seq> deferred;      // pending seqs to decide when grace ends
  std::uint32_t unanswered = 0;
  // The highest seq the broker has seen for the session: in its REQUESTs,
  // a client's STATE_EXCHANGE (next_seq - 1), a server's report or RESPONSE.
  // An ACK above it is refused (PROTOCOL.md §4.5).
  Seq highest = 0;
  // Bytes of the request and response frames its tracks keep.
  std::size_t bytes = 0;
  // A client has held it in this broker's life; a session only servers
  // reported expires after BrokerOptions::reported_session_expiry.
  bool client_seen = false;
  Time last_activity{};
};

struct ServerPeer {
  Holder holder;
  JournalId previous_journal = 0;
  std::vector<ServiceSpec> services;
  std::uint32_t credit_limit = 1;
  std::uint32_t in_flight = 0;
  bool lease_expired = false;
  bool said_goodbye = false;
  // The current process has told this broker everything it holds: its
  // STATE_EXCHANGE flagged `last` arrived, or it is a first start that was
  // never welcomed (incarnation 1, last_epoch 0), which holds nothing.
  bool reported = false;
  // Sessions its reports created since its last HELLO
  // (BrokerOptions::max_reported_sessions_per_server).
  std::uint64_t reported_sessions = 0;
};

struct Service {
  ServiceSpec spec;
  // A server has registered it at some point. Requests for a service nobody
  // registered yet wait in the queue like any other (clients may start
  // before servers) and are answered UNKNOWN_SERVICE after a lease.
  bool registered = false;
  std::vector<std::string> servers;  // alive ones, in registration order
  std::size_t next = 0;
  struct Queued {
    SessionId session;
    Seq seq;
    std::size_t bytes;  // the request's, counted in queued_bytes
  };
  std::deque<Queued> queue;
  std::size_t queued_bytes = 0;  // BrokerOptions::max_queue_bytes
  Time empty_since{};
};

struct ProbeEntry {
  Time due;
  SessionId session;
  Seq seq;
};

enum class ProbeKind : std::uint8_t { kServer, kClient };

struct PendingProbe {
  ProbeKind kind;
  std::string server;
  SessionId session;
  std::vector<Seq> seqs;
  ServerVector server_vector;  // kClient: what the server reported
  Time sent;
};

std::size_t TrackBytes(const Track& t) {
  return t.request_header.size() + t.request_payload.size() +
         t.response_header.size() + t.response_payload.size();
}

// The decision's view of one operation in a server's vector.
ServerOpView ViewOf(const ServerVector& sv, Seq seq) {
  const HeldOp* held = sv.Find(seq);
  return ServerOpView{sv.StateOf(seq),
                      held != nullptr &&
                          held->state == ServerOpState::kReceived &&
                          held->received_incarnation < sv.incarnation};
}

// What one endpoint connection (one routing id) holds: one server id, or
// one or more client sessions, never both (PROTOCOL.md §1.4). A session is
// in `sessions` exactly while its holder's route is this connection. A
// client connection's entry lives while it holds a session; a server's
// until another connection takes the id over.
struct Connection {
  Role role = Role::kClient;
  std::string server;                      // kServer: the server id
  std::unordered_set<SessionId> sessions;  // kClient: the sessions held
  // kClient: liveness is the connection's, shared by every session on it.
  Time last_heard{};
  bool silent = false;  // declared dead after silence, not heard from since
  // Sessions declared dead whose process has not been told yet: each gets
  // ERROR unknown_session on the connection's next message.
  std::vector<SessionId> untold;
};

}  // namespace

class Broker::Impl {
 public:
  explicit Impl(BrokerOptions options)
      : options_(std::move(options)),
        socket_(context_, zmq::socket_type::router),
        monitor_(context_, zmq::socket_type::pair),
        rng_(options_.seed),
        loss_(options_.inject_loss) {}

  Status Bind();
  Status Run();
  void Stop() { stop_.store(true); }
  BrokerStats Snapshot() const;
  Result<BrokerStatus> TakeStatus(std::chrono::milliseconds timeout) const;
  Epoch epoch() const { return epoch_; }
  std::string bound() const { return bound_; }

 private:
  // ---- inbound ------------------------------------------------------------
  void Handle(Frames& frames, Time now);
  void RejectUndecodable(const Frames& frames, const Status& status);
  void OnHello(const std::string& route, const Hello& hello, Time now);
  void OnRequest(const std::string& route, const Request& req, Frames& frames,
                 Time now);
  // REQUEST and RESPONSE keep their frames through reader_.TakeHeader and
  // TakePayload.
  void OnResponse(const std::string& route, const Response& resp, Time now);
  void OnAck(const std::string& route, const Ack& ack, Frames& frames,
             Time now);
  void OnStateExchange(const std::string& route, const StateExchange& se,
                       Time now);
  void OnProbeReply(const std::string& route, const ProbeReply& reply,
                    Time now);
  void OnGoodbye(const std::string& route, const Goodbye& goodbye, Time now);

  // ---- peers --------------------------------------------------------------
  // The server connection `c` (from `route`) holds, while it is that
  // server's holder.
  ServerPeer* ServerOf(const std::string& route, const Connection& c);
  // Resolves the connection a message came from and notes that it spoke. An
  // unknown one is answered ERROR unknown_session (naming `about`, the
  // session the message concerns, if any) and gives nullptr.
  Connection* Known(const std::string& route, MessageType type, Time now,
                    const SessionId& about = {});
  // A client connection spoke: it is alive. Each session on it declared dead
  // since it last spoke is told so, except `about`, which the caller tells
  // (HeldSession) or is admitting.
  void Heard(const std::string& route, Connection& c, MessageType type,
             Time now, const SessionId& about);
  // The session `sid` if connection `c` (from `route`) holds it, else
  // nullptr. A held session declared dead is told so and still returned:
  // what it sent is handled.
  Session* HeldSession(const std::string& route, const Connection& c,
                       const SessionId& sid, MessageType type);
  void AdmitServer(const std::string& route, const Hello& hello, Time now);
  void AdmitSession(const std::string& route, const Hello& hello, Time now);
  bool HolderGone(Holder& holder);
  // A session leaves the connection it is on (if any); the connection's
  // entry goes once it holds nothing more.
  void Detach(const SessionId& sid, Session& s);
  // Every session on a client connection is dead and leaves it: the
  // connection said GOODBYE for all of them, or it is gone.
  void DropClientConnection(std::string route, Time now);
  void MarkServerDead(const std::string& id, Time now);
  void RegisterServices(const std::string& id, ServerPeer& server);

  // ---- operations ---------------------------------------------------------
  void Dispatch(const SessionId& sid, Seq seq, Track& t, Time now);
  bool PickServer(const std::string& service, std::string& out);
  void SendRequestTo(const SessionId& sid, Seq seq, Track& t,
                     const std::string& server, Time now);
  // Every track enters through NewTrack and leaves the unanswered count
  // through MarkAnswered or ReleaseOne, so the count stays exact.
  Track& NewTrack(Session& s, Seq seq);
  // The frames a track keeps changed from `before` bytes: the session's and
  // the broker's totals follow (BrokerOptions::max_session_bytes,
  // max_memory_bytes).
  void Reaccount(Session& s, std::size_t before, const Track& t);
  // A bound was exceeded: ERROR limit_exceeded to `route`, counted in `c`,
  // logged at most once a second per kind.
  void Refuse(const std::string& route, std::atomic<std::uint64_t>& c,
              const char* kind, const std::string& text, MessageType ref,
              const SessionId& sid = {}, Seq seq = 0);
  void MarkAnswered(Session& s, Track& t);
  void Answer(const SessionId& sid, Session& s, Seq seq, ErrorCode status);
  void ReplayResponse(const SessionId& sid, Session& s, Track& t);
  void ReleaseBelow(Session& s, Seq below);
  void ReleaseOne(Session& s, std::map<Seq, Track>::iterator it);
  void ReturnCredit(Track& t);
  void DrainQueue(const std::string& service, Time now);
  void ScheduleProbe(const SessionId& sid, Seq seq, Track& t, Time due);
  // The operations dispatched to `server` and unanswered, from at_server_
  // (entries that no longer hold are dropped on the way): the cost is that
  // server's operations, not every operation the broker tracks.
  std::vector<std::pair<SessionId, Seq>> DispatchedAt(
      const std::string& server);
  // Some tracked operation still names `server` (dispatched, or answered by
  // it and not yet released).
  bool StillNamed(const std::string& server);
  const ServiceSpec* SpecFor(const Track& t, const ServerPeer* server) const;
  DecisionContext ContextFor(const Track* t, const ServerPeer* server,
                             bool server_journal_lost) const;
  void ApplyServerDecision(const SessionId& sid, Session& s,
                           const OpDecision& d, const std::string& server_id,
                           RecoverSession& to_server, Time now);

  // ---- timers -------------------------------------------------------------
  void Tick(Time now);
  void SendProbes(Time now);
  void EndGrace(Time now);
  void ExpireLeases(Time now);
  void CheckPeers(Time now);

  // ---- roster (BrokerOptions::roster) -------------------------------------
  Status LoadRoster();
  // Writes roster_ to the file. Returns true when the file now says what
  // roster_ says, or was removed because it could not be written (the next
  // broker then runs the full grace period); false when it could be neither
  // written nor removed.
  bool SaveRoster();
  // Before an endpoint's WELCOME: false when the roster could not be made
  // safe for it, and the HELLO must be refused.
  bool VouchedByRoster(const Hello& hello, Time now);
  bool ListInRoster(const std::string& server_id);
  void ServerReported(const std::string& server_id, Time now);
  void CheckRoster(Time now);
  void DropFromRoster(const std::vector<std::string>& ids, const char* why);

  // ---- output -------------------------------------------------------------
  // Messages are queued per peer and leave as one batch per peer at the end
  // of the turn (FlushOut); a peer found gone then is handled there.
  void SendTo(const std::string& route, const Message& m,
              zmq::message_t* payload = nullptr);
  // REQUEST/RESPONSE on their way to a peer: subject to injected loss. The
  // frames stay the caller's (Batch::AddFrames copies or shares them).
  void SendEnvelope(const std::string& route, zmq::message_t& header,
                    zmq::message_t& payload);
  void FlushOut(Time now);
  // Sends the held replays (ReplayResponse) of every client connection that
  // has other messages in this turn's batch or no answers coming
  // (AnswersComing), or of all once held_due_ has passed.
  void ReleaseHeldReplays(Time now);
  struct HeldReplay {
    SessionId session;
    zmq::message_t header, payload;
    bool waited = false;  // kept past the turn it came in (replays_held)
  };
  bool AnswersComing(const std::vector<HeldReplay>& held) const;
  // Asks the test hook whether to lose this REQUEST/RESPONSE.
  bool Faulted(FaultPoint::Where where, const Message& m);
  void SendRecover(const std::string& route, RecoverSession block);
  void SendError(const std::string& route, ErrorCode code, std::string text,
                 MessageType ref = MessageType{0}, const SessionId& sid = {},
                 Seq seq = 0);
  void LogOnce(const std::string& key, const std::string& text);
  // Forgotten sessions (forgotten.h).
  bool Idempotent(const std::string& service) const;
  bool HolderOfForgotten(const ForgottenSessions::Entry& e,
                         const std::string& service) const;
  void Forget(const SessionId& sid, const std::string& server,
              JournalId journal, Seq highest);
  // RESPONSE `conflict` for a REQUEST reusing the seq of a kept answer.
  void AnswerConflict(const std::string& route, const Request& req);
  // Reads the ROUTER's monitor events: counts and logs failed accepts.
  void ReadMonitor();

  bool InGrace(Time now) const { return now < grace_end_; }

  BrokerOptions options_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  // The ROUTER's monitor: failed accepts (descriptors exhausted), FLOWS §10.
  zmq::socket_t monitor_;
  transport::Reader reader_{/*routed=*/true};
  std::unordered_map<std::string, transport::Batch> out_;  // FlushOut
  std::unordered_map<std::string, std::vector<HeldReplay>> held_;
  Time held_due_ = Time::max();
  std::string bound_;
  Epoch epoch_ = 0;
  Time start_{};
  Time grace_end_{};
  bool grace_over_handled_ = false;

  // The roster: what the file says (roster_), and what this broker learned
  // from it at start.
  bool roster_on_ = false;       // a roster file is kept
  bool roster_trusted_ = false;  // read complete at start: grace may end early
  bool roster_unsafe_ = false;   // the file may lack what roster_ has
  broker_internal::RosterContents roster_;
  broker_internal::RosterLock roster_lock_;
  std::set<Epoch> roster_epochs_;            // brokers that kept it before us
  std::set<std::string> roster_awaiting_;    // listed at start, not reported
  std::set<std::string> roster_unreturned_;  // listed at start, no HELLO yet
  std::size_t roster_listed_ = 0;            // listed at start
  Time roster_sweep_at_{};
  bool roster_swept_ = false;
  Time next_roster_check_{};
  std::atomic<bool> stop_{false};
  // status(): another thread asks (status_wanted_) and waits; the broker's
  // thread answers between two turns (PublishStatus).
  void PublishStatus(Time now);
  mutable std::atomic<bool> status_wanted_{false};
  mutable std::mutex status_mutex_;
  mutable std::condition_variable status_cv_;
  bool running_ = false;                 // under status_mutex_
  std::uint64_t status_generation_ = 0;  // under status_mutex_
  BrokerStatus status_;                  // under status_mutex_
  // Dispatch-to-answer times and decisions by action (broker thread).
  LatencyHistogram latency_;
  std::uint64_t decisions_[kActionCount] = {};
  // RESPONSEs the broker answered itself and ERRORs it sent, by wire code.
  std::uint64_t answered_by_code_[kWireCodeCount] = {};
  std::uint64_t errors_by_code_[kWireCodeCount] = {};
  static void CountCode(std::uint64_t (&counts)[kWireCodeCount],
                        ErrorCode code) {
    const auto i = static_cast<std::size_t>(code);
    if (i < kWireCodeCount) ++counts[i];
  }
  // Counts a recovery decision and logs it as one structured line
  // (FLOWS.md §11) unless it asks nothing of anyone.
  void NoteDecision(const SessionId& sid, const OpDecision& d,
                    const char* source);

  std::unordered_map<SessionId, Session> sessions_;
  std::unordered_map<std::string, ServerPeer> servers_;
  std::unordered_map<std::string, Service> services_;
  std::size_t unregistered_services_ = 0;
  std::unordered_map<std::string, Connection> routes_;
  std::deque<ProbeEntry> probe_queue_;
  std::unordered_map<std::uint64_t, PendingProbe> probes_;
  std::uint64_t next_probe_id_ = 1;
  ForgottenSessions forgotten_{options_.max_forgotten_sessions};
  Time next_tick_{};
  Time next_peer_check_{};

  std::mt19937_64 rng_;
  std::bernoulli_distribution loss_;
  std::set<std::string> logged_;
  // Refusal log lines: kind -> (last logged, refusals since).
  std::map<std::string, std::pair<Time, std::uint64_t>> refusal_log_;
  std::size_t retained_bytes_ = 0;  // frames kept by every track
  // server id -> (session, seq) of operations dispatched to it: added at
  // dispatch, removed at release, checked when read (DispatchedAt).
  std::unordered_map<std::string, std::set<std::pair<SessionId, Seq>>>
      at_server_;
  Time accept_failure_logged_{};
  CodecLimits limits_;
  mutable Counters counters_;
};

// ===========================================================================
// Setup and the loop
// ===========================================================================

Status Broker::Impl::Bind() {
  if (Status s = transport::CheckEndpoint(options_.endpoint, /*bind=*/true);
      !s.ok()) {
    return s;
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
                           ZMQ_EVENT_ACCEPT_FAILED) != 0) {
      throw zmq::error_t();
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(monitor);
    socket_.bind(options_.endpoint);
    bound_ = socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kIoError,
                  "cannot bind " + options_.endpoint + ": " + e.what());
  }
  if (options_.epoch != 0) {
    epoch_ = options_.epoch;
  } else {
    std::random_device rd;
    epoch_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    if (epoch_ == 0) epoch_ = 1;
  }
  limits_.max_payload_bytes =
      static_cast<std::size_t>(options_.max_message_bytes) * 4 +
      static_cast<std::size_t>(kHardFrameSlack);
  if (!options_.roster.empty()) return LoadRoster();
  return Status::Ok();
}

Status Broker::Impl::Run() {
  const Time start = Clock::now();
  start_ = start;
  grace_end_ = start + options_.grace;
  roster_sweep_at_ = grace_end_ + options_.lease;
  next_tick_ = start;
  spdlog::info("rejoin-broker: serving {} epoch {:016x} grace {} ms", bound_,
               epoch_, options_.grace.count());
  // A complete roster that lists nobody: no server can hold anything.
  if (roster_trusted_ && roster_awaiting_.empty() && InGrace(start)) {
    EndGrace(start);
  }
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
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick_ - now);
    wait = std::clamp(wait, std::chrono::milliseconds(0),
                      std::chrono::milliseconds(20));
    // The rest of a batch the last turn did not finish is already here: the
    // socket will not announce it again.
    if (reader_.buffered()) wait = std::chrono::milliseconds(0);
    if (held_due_ != Time::max()) {
      wait =
          std::min(wait, std::max(std::chrono::milliseconds(0),
                                  std::chrono::ceil<std::chrono::milliseconds>(
                                      held_due_ - now)));
    }
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status(ErrorCode::kIoError, std::string("poll: ") + e.what());
    }
    if ((items[1].revents & ZMQ_POLLIN) != 0) ReadMonitor();
    now = Clock::now();
    for (int i = 0; i < kBatch; ++i) {
      auto r = reader_.Next(socket_, frames);
      if (r == transport::ReadResult::kNothing) break;
      if (r == transport::ReadResult::kClosed) {
        return Status(ErrorCode::kClosed, "socket closed");
      }
      Handle(frames, now);
    }
    if (now >= next_tick_) {
      Tick(now);
      next_tick_ = now + tick_every;
    }
    FlushOut(now);
    counters_.connections.store(routes_.size(), std::memory_order_relaxed);
    if (status_wanted_.load(std::memory_order_relaxed)) PublishStatus(now);
  }
  {
    std::lock_guard lock(status_mutex_);
    running_ = false;
  }
  status_cv_.notify_all();
  // Tell everyone we are leaving so they do not wait for heartbeats: one
  // GOODBYE per connection that holds a live id, however many sessions it
  // carries.
  for (const auto& [route, c] : routes_) {
    bool live = false;
    if (c.role == Role::kServer) {
      const ServerPeer* srv = ServerOf(route, c);
      live = srv != nullptr && srv->holder.alive;
    } else {
      for (const SessionId& sid : c.sessions) {
        auto s = sessions_.find(sid);
        if (s != sessions_.end() && s->second.holder.alive) {
          live = true;
          break;
        }
      }
    }
    if (live) SendTo(route, Goodbye{"broker shutting down", {}});
  }
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
  st.stats = Snapshot();
  st.epoch = epoch_;
  st.endpoint = bound_;
  st.uptime_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now - start_)
          .count());
  st.in_grace = InGrace(now);
  if (st.in_grace) {
    st.grace_remaining_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(grace_end_ - now)
            .count());
  }
  for (const auto& [sid, session] : sessions_) {
    st.tracked_operations += session.ops.size();
  }
  std::map<std::string, ServiceStatus> services;
  for (const auto& [name, svc] : services_) {
    ServiceStatus& out = services[name];
    out.name = name;
    out.registered = svc.registered;
    out.queued = svc.queue.size();
    out.queued_bytes = svc.queued_bytes;
  }
  std::map<std::string, ServerStatus> servers;
  for (const auto& [id, srv] : servers_) {
    ServerStatus& out = servers[id];
    out.id = id;
    out.alive = srv.holder.alive;
    out.reported = srv.reported;
    out.incarnation = srv.holder.incarnation;
    out.credit = srv.credit_limit;
    out.in_flight = srv.in_flight;
    for (const ServiceSpec& spec : srv.services) {
      out.services.push_back(spec.name);
      if (!srv.holder.alive) continue;
      ServiceStatus& svc = services[spec.name];
      svc.name = spec.name;
      ++svc.servers;
      svc.credit += spec.credit;
    }
  }
  for (auto& [name, svc] : services) st.services.push_back(std::move(svc));
  for (auto& [id, srv] : servers) st.servers.push_back(std::move(srv));
  static constexpr char kHex[] = "0123456789abcdef";
  for (const auto& [route, c] : routes_) {
    ConnectionStatus out;
    for (char ch : route) {
      const auto b = static_cast<unsigned char>(ch);
      out.peer.push_back(kHex[b >> 4]);
      out.peer.push_back(kHex[b & 15]);
    }
    out.server = c.role == Role::kServer;
    out.server_id = c.server;
    out.sessions = c.sessions.size();
    out.silent = c.silent;
    st.connections.push_back(std::move(out));
  }
  std::copy(std::begin(decisions_), std::end(decisions_),
            std::begin(st.decisions));
  std::copy(std::begin(answered_by_code_), std::end(answered_by_code_),
            std::begin(st.answered_by_code));
  std::copy(std::begin(errors_by_code_), std::end(errors_by_code_),
            std::begin(st.errors_by_code));
  st.latency_bounds_us.assign(std::begin(LatencyHistogram::kBoundsUs),
                              std::end(LatencyHistogram::kBoundsUs));
  st.latency_cumulative = latency_.Cumulative();
  st.latency_count = latency_.count();
  st.latency_sum_us = latency_.sum_us();
  {
    std::lock_guard lock(status_mutex_);
    status_ = std::move(st);
    ++status_generation_;
    status_wanted_.store(false, std::memory_order_relaxed);
  }
  status_cv_.notify_all();
}

void Broker::Impl::NoteDecision(const SessionId& sid, const OpDecision& d,
                                const char* source) {
  const auto action = static_cast<std::size_t>(d.action);
  if (action < kActionCount) ++decisions_[action];
  if (d.action == Action::kNone || d.action == Action::kWait) return;
  LogEvent({{"event", "recovery"},
            {"session", sid},
            {"seq", std::to_string(d.seq)},
            {"breakpoint", std::string(BreakpointName(d.breakpoint))},
            {"action", std::string(ActionName(d.action))},
            {"actor", ActorOf(d.action) == Actor::kClient   ? "client"
                      : ActorOf(d.action) == Actor::kServer ? "server"
                                                            : "nobody"},
            {"source", source}});
}

BrokerStats Broker::Impl::Snapshot() const {
  auto v = [](const std::atomic<std::uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  const Counters& c = counters_;
  BrokerStats s;
  s.sessions = v(c.sessions);
  s.connections = v(c.connections);
  s.servers = v(c.servers);
  s.requests = v(c.requests);
  s.responses = v(c.responses);
  s.forwarded_resends = v(c.forwarded_resends);
  s.responses_replayed = v(c.responses_replayed);
  s.replays_held = v(c.replays_held);
  s.probes = v(c.probes);
  s.recover_messages = v(c.recover_messages);
  s.state_exchanges = v(c.state_exchanges);
  s.moved = v(c.moved);
  s.answered_in_doubt = v(c.answered_in_doubt);
  s.answered_errors = v(c.answered_errors);
  s.injected_drops = v(c.injected_drops);
  s.malformed = v(c.malformed);
  s.bad_version = v(c.bad_version);
  s.unknown_type = v(c.unknown_type);
  s.too_large = v(c.too_large);
  s.unknown_peer = v(c.unknown_peer);
  s.fenced = v(c.fenced);
  s.duplicate_identity = v(c.duplicate_identity);
  s.orphans = v(c.orphans);
  s.grace_ms = v(c.grace_ms);
  s.grace_ended_early = v(c.grace_ended_early);
  s.roster_servers = v(c.roster_servers);
  s.servers_silent = v(c.servers_silent);
  s.protocol_violations = v(c.protocol_violations);
  s.probes_ended = v(c.probes_ended);
  s.refused_session_quota = v(c.refused_session_quota);
  s.refused_sessions = v(c.refused_sessions);
  s.refused_reported_sessions = v(c.refused_reported_sessions);
  s.refused_unacked = v(c.refused_unacked);
  s.refused_queue_bytes = v(c.refused_queue_bytes);
  s.refused_memory = v(c.refused_memory);
  s.expired_reported_sessions = v(c.expired_reported_sessions);
  s.forgotten_sessions = v(c.forgotten_sessions);
  s.forgotten_dropped = v(c.forgotten_dropped);
  s.forgotten_routed = v(c.forgotten_routed);
  s.forgotten_in_doubt = v(c.forgotten_in_doubt);
  s.conflicts = v(c.conflicts);
  s.retained_bytes = v(c.retained_bytes);
  s.accept_failures = v(c.accept_failures);
  return s;
}

// ===========================================================================
// Inbound
// ===========================================================================

void Broker::Impl::Handle(Frames& frames, Time now) {
  Result<Message> decoded = transport::Decode(frames, limits_);
  if (!decoded.ok()) {
    RejectUndecodable(frames, decoded.status());
    return;
  }
  const std::string& route = frames.route;
  Message& msg = decoded.value();
  if (options_.fault && Faulted(FaultPoint::Where::kArrived, msg)) return;
  switch (TypeOf(msg)) {
    case MessageType::kHello:
      OnHello(route, std::get<Hello>(msg), now);
      return;
    case MessageType::kRequest:
      OnRequest(route, std::get<Request>(msg), frames, now);
      return;
    case MessageType::kResponse:
      OnResponse(route, std::get<Response>(msg), now);
      return;
    case MessageType::kAck:
      OnAck(route, std::get<Ack>(msg), frames, now);
      return;
    case MessageType::kHeartbeat: {
      // A client connection's liveness, which all its sessions share, was
      // noted by Known.
      // Known notes that the connection spoke, whatever it holds.
      if (Known(route, MessageType::kHeartbeat, now) == nullptr) return;
      SendTo(route, Heartbeat{epoch_});
      return;
    }
    case MessageType::kStateExchange:
      OnStateExchange(route, std::get<StateExchange>(msg), now);
      return;
    case MessageType::kProbeReply:
      OnProbeReply(route, std::get<ProbeReply>(msg), now);
      return;
    case MessageType::kError: {
      const Error& e = std::get<Error>(msg);
      LogOnce("peer-error:" + route + std::to_string(static_cast<int>(e.code)),
              "peer reported " + std::string(ErrorCodeName(e.code)) + ": " +
                  Printable(e.message));
      return;
    }
    case MessageType::kGoodbye:
      OnGoodbye(route, std::get<Goodbye>(msg), now);
      return;
    case MessageType::kWelcome:
    case MessageType::kRecover:
    case MessageType::kProbe:
      SendError(route, ErrorCode::kProtocolViolation,
                std::string(MessageTypeName(TypeOf(msg))) +
                    " is sent by the broker, not to it",
                TypeOf(msg));
      return;
  }
}

void Broker::Impl::RejectUndecodable(const Frames& frames,
                                     const Status& status) {
  Bump(counters_.malformed);
  switch (status.code()) {
    case ErrorCode::kUnsupportedVersion:
      Bump(counters_.bad_version);
      break;
    case ErrorCode::kUnknownType:
      Bump(counters_.unknown_type);
      break;
    case ErrorCode::kTooLarge:
      Bump(counters_.too_large);
      break;
    default:
      break;
  }
  LogOnce(
      "bad:" + frames.route + ":" + std::string(ErrorCodeName(status.code())),
      "dropped frame from peer: " + Printable(status.ToString()));
  // Never answer an ERROR with an ERROR: two confused peers would loop.
  std::span<const std::byte> header = std::as_bytes(std::span(frames.header));
  MessageType ref{0};
  if (frames.count > 0) {
    if (auto type = PeekType(header); type.ok()) {
      if (*type == MessageType::kError) return;
      ref = *type;
    }
  }
  const ErrorCode code =
      IsWireCode(status.code()) ? status.code() : ErrorCode::kMalformed;
  SendError(frames.route, code, status.message(), ref);
}

Connection* Broker::Impl::Known(const std::string& route, MessageType type,
                                Time now, const SessionId& about) {
  auto it = routes_.find(route);
  if (it == routes_.end()) {
    Bump(counters_.unknown_peer);
    SendError(route, ErrorCode::kUnknownSession,
              "unknown connection: send HELLO", type, about);
    return nullptr;
  }
  Connection& c = it->second;
  if (c.role == Role::kClient) {
    Heard(route, c, type, now, about);
    return &c;
  }
  // Liveness belongs to the connection (PROTOCOL.md §1.4): any message from
  // the server's holder connection shows it alive, a PROBE_REPLY or an ACK
  // as much as a HEARTBEAT. A server whose handlers run for a long time
  // answers probes instead of sending heartbeats.
  // A server declared dead after silence (a stalled process, a network
  // hiccup) is told to HELLO again: the broker may have acted on its death
  // (leases, in-doubt answers), so it must return and exchange state. What it
  // sent is still handled.
  auto s = servers_.find(c.server);
  if (s != servers_.end() && s->second.holder.route == route) {
    s->second.holder.last_heard = now;
    if (!s->second.holder.alive) {
      SendError(route, ErrorCode::kUnknownSession,
                "declared dead after silence: send HELLO", type, c.server);
    }
  }
  return &c;
}

void Broker::Impl::Heard(const std::string& route, Connection& c,
                         MessageType type, Time now, const SessionId& about) {
  c.last_heard = now;
  c.silent = false;
  if (c.untold.empty()) return;
  // Declared dead after silence (a stalled process, a network hiccup): each
  // session is told to HELLO again, once, because the broker may have acted
  // on its death. A session the connection sends about is told by its
  // handler, every time.
  std::vector<SessionId> untold;
  untold.swap(c.untold);
  for (const SessionId& sid : untold) {
    if (sid == about) continue;
    auto s = sessions_.find(sid);
    if (s == sessions_.end() || s->second.holder.route != route ||
        s->second.holder.alive) {
      continue;  // moved, left or welcomed again meanwhile
    }
    SendError(route, ErrorCode::kUnknownSession,
              "declared dead after silence: send HELLO", type, sid);
  }
}

Session* Broker::Impl::HeldSession(const std::string& route,
                                   const Connection& c, const SessionId& sid,
                                   MessageType type) {
  if (c.role != Role::kClient) return nullptr;
  auto it = sessions_.find(sid);
  if (it == sessions_.end() || it->second.holder.route != route) {
    return nullptr;
  }
  if (!it->second.holder.alive) {
    SendError(route, ErrorCode::kUnknownSession,
              "declared dead after silence: send HELLO", type, sid);
  }
  return &it->second;
}

ServerPeer* Broker::Impl::ServerOf(const std::string& route,
                                   const Connection& c) {
  if (c.role != Role::kServer) return nullptr;
  auto s = servers_.find(c.server);
  if (s == servers_.end() || s->second.holder.route != route) return nullptr;
  return &s->second;
}

// True when the current holder's connection is gone: dead by timeout, or a
// probe send fails because the ROUTER no longer has its pipe.
bool Broker::Impl::HolderGone(Holder& holder) {
  if (!holder.alive) return true;
  // A send processes libzmq's pending commands only now and then, so the
  // pipe of a connection that closed a moment ago (a process killed and
  // started again) may still take the heartbeat. Reading ZMQ_EVENTS
  // processes them all first.
  (void)socket_.get(zmq::sockopt::events);
  SendResult r = transport::Send(socket_, holder.route, Heartbeat{epoch_});
  return r == SendResult::kUnreachable;
}

void Broker::Impl::OnHello(const std::string& route, const Hello& hello,
                           Time now) {
  spdlog::debug(
      "rejoin-broker: HELLO from {} {} incarnation {} last epoch {:016x}",
      hello.role == Role::kServer ? "server" : "session", Printable(hello.id),
      hello.incarnation, hello.last_epoch);
  if (auto it = routes_.find(route); it != routes_.end()) {
    // A connection holds one server id, or client sessions (§1.4).
    Connection& c = it->second;
    if (c.role != hello.role ||
        (c.role == Role::kServer && c.server != hello.id)) {
      SendError(route, ErrorCode::kProtocolViolation,
                c.role == Role::kServer
                    ? "this connection holds server '" + c.server +
                          "': another id needs a connection of its own"
                    : "this connection carries client sessions: a server "
                      "needs a connection of its own",
                MessageType::kHello, hello.id);
      return;
    }
    if (c.role == Role::kClient) {
      Heard(route, c, MessageType::kHello, now, hello.id);
    }
  }
  if (hello.role == Role::kServer) {
    AdmitServer(route, hello, now);
  } else {
    AdmitSession(route, hello, now);
  }
}

// Shared admission rule (FLOWS §2). Returns false after answering ERROR.
template <typename Peer>
static bool MayTakeOver(Peer& peer, const Hello& hello,
                        const std::string& route, bool holder_gone,
                        std::string& why, ErrorCode& code) {
  Holder& h = peer.holder;
  if (h.route == route) return true;
  if (h.journal_id == hello.journal_id && h.incarnation == hello.incarnation) {
    return true;  // the same process on a new connection
  }
  // Checked even when the id is on no connection (its session left with
  // GOODBYE, or its connection is gone): a new id has incarnation 0.
  if (h.journal_id == hello.journal_id && h.incarnation > hello.incarnation) {
    code = ErrorCode::kFenced;
    why = "incarnation " + std::to_string(hello.incarnation) +
          " is older than the current " + std::to_string(h.incarnation);
    return false;
  }
  if (h.route.empty() || holder_gone) return true;
  code = ErrorCode::kDuplicateIdentity;
  why = "'" + hello.id + "' is held by a live process";
  return false;
}

void Broker::Impl::AdmitSession(const std::string& route, const Hello& hello,
                                Time now) {
  auto it = sessions_.find(hello.id);
  // A connection carries at most max_sessions_per_connection sessions, well
  // below max_sessions: one connection cannot fill the table for others.
  if (it == sessions_.end() || it->second.holder.route != route) {
    auto c = routes_.find(route);
    if (c != routes_.end() &&
        c->second.sessions.size() >= options_.max_sessions_per_connection) {
      Refuse(route, counters_.refused_session_quota, "sessions per connection",
             "this connection carries its maximum of " +
                 std::to_string(options_.max_sessions_per_connection) +
                 " sessions",
             MessageType::kHello, hello.id);
      return;
    }
  }
  if (it == sessions_.end()) {
    if (sessions_.size() >= options_.max_sessions) {
      Refuse(route, counters_.refused_sessions, "sessions",
             "broker holds its maximum of " +
                 std::to_string(options_.max_sessions) + " sessions",
             MessageType::kHello, hello.id);
      return;
    }
    it = sessions_.emplace(hello.id, Session{}).first;
    it->second.id = hello.id;
    Bump(counters_.sessions);
  }
  Session& s = it->second;
  if (s.holder.alive && s.holder.route != route && HolderGone(s.holder)) {
    // The connection is gone, and with it every session it carried: the
    // others need no probe when their HELLOs come.
    DropClientConnection(s.holder.route, now);
  }
  std::string why;
  ErrorCode code = ErrorCode::kOk;
  const bool gone = !s.holder.alive || s.holder.route == route;
  if (!MayTakeOver(s, hello, route, gone, why, code)) {
    Bump(code == ErrorCode::kFenced ? counters_.fenced
                                    : counters_.duplicate_identity);
    SendError(route, code, why, MessageType::kHello, hello.id);
    return;
  }
  if (!VouchedByRoster(hello, now)) {
    SendError(route, ErrorCode::kInternal, "broker cannot update its roster",
              MessageType::kHello, hello.id);
    return;
  }
  // Moved from another connection, which keeps its other sessions.
  if (s.holder.route != route) Detach(hello.id, s);
  if (s.holder.journal_id != 0 && s.holder.journal_id != hello.journal_id) {
    // The client lost its journal: nothing it held can be delivered any
    // more. Servers drop those records when the new journal's watermark
    // (which starts above every old seq) reaches them.
    s.previous_journal = s.holder.journal_id;
    Bump(counters_.orphans, s.ops.size());
    while (!s.ops.empty()) ReleaseOne(s, s.ops.begin());
  }
  s.holder = Holder{route, hello.incarnation, hello.journal_id, true, now, {}};
  s.client_seen = true;
  s.last_activity = now;
  auto [cit, new_connection] = routes_.try_emplace(route);
  if (new_connection) cit->second.last_heard = now;
  cit->second.sessions.insert(hello.id);
  Welcome w{epoch_,
            static_cast<std::uint32_t>(options_.heartbeat.count()),
            options_.max_message_bytes,
            options_.max_outstanding,
            0,
            hello.id};
  if (InGrace(now)) {
    w.grace_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(grace_end_ - now)
            .count());
  }
  SendTo(route, w);
}

void Broker::Impl::AdmitServer(const std::string& route, const Hello& hello,
                               Time now) {
  auto [it, fresh] = servers_.try_emplace(hello.id);
  ServerPeer& srv = it->second;
  std::string why;
  ErrorCode code = ErrorCode::kOk;
  const bool gone =
      fresh || srv.holder.route == route || HolderGone(srv.holder);
  if (!fresh && !MayTakeOver(srv, hello, route, gone, why, code)) {
    Bump(code == ErrorCode::kFenced ? counters_.fenced
                                    : counters_.duplicate_identity);
    SendError(route, code, why, MessageType::kHello, hello.id);
    return;
  }
  // Listed durably before WELCOME, hence before anything is dispatched to
  // it: the roster never lacks a server that a broker dispatched to.
  if (!VouchedByRoster(hello, now) || !ListInRoster(hello.id)) {
    SendError(route, ErrorCode::kInternal,
              "broker cannot record the server in its roster",
              MessageType::kHello, hello.id);
    return;
  }
  const bool same_process = !fresh &&
                            srv.holder.journal_id == hello.journal_id &&
                            srv.holder.incarnation == hello.incarnation;
  if (!fresh && srv.holder.route != route) routes_.erase(srv.holder.route);
  if (!fresh && srv.holder.journal_id != hello.journal_id) {
    srv.previous_journal = srv.holder.journal_id;
  }
  const bool was_alive = !fresh && srv.holder.alive;
  srv.holder =
      Holder{route, hello.incarnation, hello.journal_id, true, now, {}};
  srv.services = hello.services;
  srv.credit_limit = 1;
  for (const ServiceSpec& spec : hello.services) {
    srv.credit_limit = std::max(srv.credit_limit, spec.credit);
  }
  // A new process runs none of the old one's handlers.
  if (!same_process) srv.in_flight = 0;
  srv.lease_expired = false;
  srv.said_goodbye = false;
  srv.reported = hello.incarnation == 1 && hello.last_epoch == 0;
  srv.reported_sessions = 0;
  roster_unreturned_.erase(hello.id);
  Connection& c = routes_[route];
  c.role = Role::kServer;
  c.server = hello.id;
  if (!was_alive) Bump(counters_.servers);
  RegisterServices(hello.id, srv);

  Welcome w{epoch_,
            static_cast<std::uint32_t>(options_.heartbeat.count()),
            options_.max_message_bytes,
            options_.max_outstanding,
            0,
            hello.id};
  if (InGrace(now)) {
    w.grace_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(grace_end_ - now)
            .count());
  }
  SendTo(route, w);
  if (srv.reported) ServerReported(hello.id, now);

  // Operations that waited for this server go to it again: it deduplicates,
  // so this is safe, and it is the quickest way back to an answer.
  // Only its own operations are looked at (at_server_), however many the
  // broker tracks.
  for (const auto& [sid, seq] : DispatchedAt(hello.id)) {
    Track& t = sessions_.find(sid)->second.ops.find(seq)->second;
    if (t.server_journal != hello.journal_id) {
      // Leave it to the probe, which sees the lost journal.
      ScheduleProbe(sid, seq, t, now);
    } else if (t.has_request) {
      SendRequestTo(sid, seq, t, hello.id, now);
    } else {
      ScheduleProbe(sid, seq, t, now);
    }
  }
  for (const ServiceSpec& spec : hello.services) DrainQueue(spec.name, now);
}

void Broker::Impl::RegisterServices(const std::string& id, ServerPeer& srv) {
  for (const ServiceSpec& spec : srv.services) {
    auto [it, fresh] = services_.try_emplace(spec.name);
    Service& svc = it->second;
    if (!svc.registered) {
      if (!fresh) --unregistered_services_;
      svc.registered = true;
      svc.spec = spec;
    } else if (svc.spec.idempotent != spec.idempotent ||
               svc.spec.policy != spec.policy) {
      LogOnce("policy:" + spec.name,
              "servers disagree on the policy of service " +
                  Printable(spec.name) + "; keeping the first one registered");
    }
    if (std::find(svc.servers.begin(), svc.servers.end(), id) ==
        svc.servers.end()) {
      svc.servers.push_back(id);
    }
  }
}

void Broker::Impl::MarkServerDead(const std::string& id, Time now) {
  auto it = servers_.find(id);
  if (it == servers_.end() || !it->second.holder.alive) return;
  ServerPeer& srv = it->second;
  srv.holder.alive = false;
  srv.holder.dead_since = now;
  counters_.servers.fetch_sub(1, std::memory_order_relaxed);
  for (const ServiceSpec& spec : srv.services) {
    auto svc = services_.find(spec.name);
    if (svc == services_.end()) continue;
    auto& list = svc->second.servers;
    list.erase(std::remove(list.begin(), list.end(), id), list.end());
    if (list.empty()) svc->second.empty_since = now;
  }
  spdlog::info("rejoin-broker: server {} is gone", Printable(id));
}

void Broker::Impl::OnGoodbye(const std::string& route, const Goodbye& goodbye,
                             Time now) {
  auto it = routes_.find(route);
  if (it == routes_.end()) return;
  Connection& c = it->second;
  if (c.role == Role::kServer) {
    if (ServerPeer* srv = ServerOf(route, c)) {
      srv->said_goodbye = true;
      MarkServerDead(c.server, now);
    }
    return;
  }
  if (goodbye.id.empty()) {
    DropClientConnection(route, now);
    return;
  }
  // One session leaves; the connection stays for the others.
  Heard(route, c, MessageType::kGoodbye, now, goodbye.id);
  auto s = sessions_.find(goodbye.id);
  if (s == sessions_.end() || s->second.holder.route != route) return;
  Holder& h = s->second.holder;
  if (h.alive) {
    h.alive = false;
    h.dead_since = now;
  }
  Detach(goodbye.id, s->second);
}

void Broker::Impl::Detach(const SessionId& sid, Session& s) {
  if (s.holder.route.empty()) return;
  auto it = routes_.find(s.holder.route);
  if (it != routes_.end() && it->second.role == Role::kClient) {
    it->second.sessions.erase(sid);
    if (it->second.sessions.empty()) routes_.erase(it);
  }
  s.holder.route.clear();
}

void Broker::Impl::DropClientConnection(std::string route, Time now) {
  auto it = routes_.find(route);
  if (it == routes_.end() || it->second.role != Role::kClient) return;
  for (const SessionId& sid : it->second.sessions) {
    auto s = sessions_.find(sid);
    if (s == sessions_.end()) continue;
    Holder& h = s->second.holder;
    if (h.alive) {
      h.alive = false;
      h.dead_since = now;
    }
    h.route.clear();
  }
  routes_.erase(it);
}

// ---- REQUEST --------------------------------------------------------------

void Broker::Impl::OnRequest(const std::string& route, const Request& req,
                             Frames& frames, Time now) {
  const Connection* c = Known(route, MessageType::kRequest, now, req.session);
  if (c == nullptr) return;
  Session* sp = HeldSession(route, *c, req.session, MessageType::kRequest);
  if (sp == nullptr) {
    Bump(counters_.fenced);
    SendError(route, ErrorCode::kNotAuthorized,
              "REQUEST for a session this connection does not hold",
              MessageType::kRequest, req.session, req.seq);
    return;
  }
  Session& s = *sp;
  s.last_activity = now;
  s.highest = std::max(s.highest, req.seq);
  ReleaseBelow(s, req.completed_watermark);
  if (req.seq < req.completed_watermark) return;  // already completed

  auto it = s.ops.find(req.seq);
  if (it != s.ops.end()) {
    Track& t = it->second;
    switch (t.phase) {
      case Phase::kAnswered:
        if (t.has_digest &&
            t.digest != proto::RequestDigest(req.service, frames.payload)) {
          AnswerConflict(route, req);
          return;
        }
        ReplayResponse(req.session, s, t);
        return;
      case Phase::kDispatched: {
        if (!t.has_request) {
          const std::size_t before = TrackBytes(t);
          t.request_header = reader_.TakeHeader();
          t.request_payload = reader_.TakePayload();
          t.has_request = true;
          Reaccount(s, before, t);
        }
        auto srv = servers_.find(t.server);
        if (srv == servers_.end() || !srv->second.holder.alive) {
          return;  // the holder keeps it until it returns or its lease ends
        }
        if (srv->second.holder.journal_id != t.server_journal) {
          // The holder lost its journal since dispatch: its "no record"
          // would run the request again. The probe decides instead.
          if (t.due > now) ScheduleProbe(req.session, req.seq, t, now);
          return;
        }
        Bump(counters_.forwarded_resends);
        SendRequestTo(req.session, req.seq, t, t.server, now);
        return;
      }
      case Phase::kQueued:
      case Phase::kHeldForGrace:
        return;
    }
  }

  if (frames.payload.size() > options_.max_message_bytes) {
    Bump(counters_.too_large);
    Answer(req.session, s, req.seq, ErrorCode::kTooLarge);
    return;
  }
  if (services_.count(req.service) == 0) {
    if (unregistered_services_ >= kMaxUnregisteredServices) {
      // Bounded: a flood of invented names must not grow the broker.
      Answer(req.session, s, req.seq, ErrorCode::kUnknownService);
      return;
    }
    services_[req.service].empty_since = now;
    ++unregistered_services_;
  }
  if (s.unanswered >= options_.max_outstanding) {
    Answer(req.session, s, req.seq, ErrorCode::kLimitExceeded);
    return;
  }
  // Bounds that ACKs or answers lift again: refused with an ERROR that
  // leaves nothing behind; the client's resend gets through once they do.
  const std::size_t incoming = frames.payload.size() + frames.header.size();
  if (s.ops.size() - s.unanswered >= options_.max_session_unacked ||
      s.bytes + incoming > options_.max_session_bytes) {
    Refuse(route, counters_.refused_unacked, "session unacknowledged",
           "session " + req.session + " keeps " +
               std::to_string(s.ops.size() - s.unanswered) + " answers (" +
               std::to_string(s.bytes) +
               " bytes) its client has not acknowledged; limits " +
               std::to_string(options_.max_session_unacked) + " and " +
               std::to_string(options_.max_session_bytes) + " bytes",
           MessageType::kRequest, req.session, req.seq);
    return;
  }
  if (retained_bytes_ + incoming > options_.max_memory_bytes) {
    Refuse(route, counters_.refused_memory, "memory budget",
           "broker keeps " + std::to_string(retained_bytes_) +
               " bytes of requests and responses; budget " +
               std::to_string(options_.max_memory_bytes),
           MessageType::kRequest, req.session, req.seq);
    return;
  }
  if (auto svc = services_.find(req.service);
      svc != services_.end() && !svc->second.queue.empty() &&
      svc->second.queued_bytes + incoming > options_.max_queue_bytes) {
    Refuse(route, counters_.refused_queue_bytes, "service queue bytes",
           "service " + req.service + " has " +
               std::to_string(svc->second.queued_bytes) +
               " bytes queued; limit " +
               std::to_string(options_.max_queue_bytes),
           MessageType::kRequest, req.session, req.seq);
    return;
  }
  const ForgottenSessions::Entry* forgotten =
      forgotten_.empty() ? nullptr : forgotten_.Find(req.session);
  if (forgotten != nullptr && req.seq <= forgotten->highest &&
      !Idempotent(req.service) && !HolderOfForgotten(*forgotten, req.service)) {
    // A server may have run it and the broker no longer knows which one:
    // any other server would run it again (FLOWS.md §10).
    Bump(counters_.forgotten_in_doubt);
    LogOnce("forgotten-in-doubt",
            "untracked REQUEST of forgotten session " + Printable(req.session) +
                " (seq " + std::to_string(req.seq) +
                "): no single live server is known to hold it; answered "
                "in_doubt");
    Answer(req.session, s, req.seq, ErrorCode::kInDoubt);
    return;
  }
  Track& t = NewTrack(s, req.seq);
  t.service = req.service;
  t.request_header = reader_.TakeHeader();
  t.request_payload = reader_.TakePayload();
  t.has_request = true;
  Reaccount(s, 0, t);
  if (forgotten != nullptr && req.seq <= forgotten->highest &&
      !Idempotent(req.service)) {
    // Back to the one server that named the session: it holds the
    // operation (and answers from its journal) or never had it.
    Bump(counters_.forgotten_routed);
    t.phase = Phase::kDispatched;
    t.dispatched = now;
    t.server = forgotten->server;
    t.server_journal = forgotten->journal;
    at_server_[t.server].emplace(req.session, req.seq);
    s.servers.insert(t.server);
    SendRequestTo(req.session, req.seq, t, t.server, now);
    return;
  }
  if (InGrace(now) && (req.flags & kRequestResend) != 0) {
    // A server that has not reported yet may hold this one.
    t.phase = Phase::kHeldForGrace;
    return;
  }
  Dispatch(req.session, req.seq, t, now);
}

bool Broker::Impl::PickServer(const std::string& service, std::string& out) {
  auto it = services_.find(service);
  if (it == services_.end()) return false;
  Service& svc = it->second;
  const std::size_t n = svc.servers.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& id = svc.servers[(svc.next + i) % n];
    ServerPeer& srv = servers_[id];
    if (srv.holder.alive && srv.in_flight < srv.credit_limit) {
      svc.next = (svc.next + i + 1) % n;
      out = id;
      return true;
    }
  }
  return false;
}

void Broker::Impl::Dispatch(const SessionId& sid, Seq seq, Track& t, Time now) {
  std::string server;
  if (!PickServer(t.service, server)) {
    Service& svc = services_[t.service];
    if (svc.queue.size() >= options_.max_queue) {
      auto s = sessions_.find(sid);
      Answer(sid, s->second, seq, ErrorCode::kLimitExceeded);
      return;
    }
    t.phase = Phase::kQueued;
    if (svc.servers.empty() && svc.empty_since == Time{}) svc.empty_since = now;
    const std::size_t bytes =
        t.request_header.size() + t.request_payload.size();
    svc.queue.push_back(Service::Queued{sid, seq, bytes});
    svc.queued_bytes += bytes;
    return;
  }
  ServerPeer& srv = servers_[server];
  ++srv.in_flight;
  t.credit_taken = true;
  t.phase = Phase::kDispatched;
  t.dispatched = now;
  t.server = server;
  at_server_[server].emplace(sid, seq);
  t.server_journal = srv.holder.journal_id;
  sessions_[sid].servers.insert(server);
  Bump(counters_.requests);
  SendRequestTo(sid, seq, t, server, now);
}

void Broker::Impl::SendRequestTo(const SessionId& sid, Seq seq, Track& t,
                                 const std::string& server, Time now) {
  ServerPeer& srv = servers_[server];
  if (t.has_request) {
    SendEnvelope(srv.holder.route, t.request_header, t.request_payload);
  }
  ScheduleProbe(sid, seq, t, now + options_.probe);
}

std::vector<std::pair<SessionId, Seq>> Broker::Impl::DispatchedAt(
    const std::string& server) {
  std::vector<std::pair<SessionId, Seq>> out;
  auto idx = at_server_.find(server);
  if (idx == at_server_.end()) return out;
  for (auto it = idx->second.begin(); it != idx->second.end();) {
    auto s = sessions_.find(it->first);
    const Track* t = nullptr;
    if (s != sessions_.end()) {
      auto op = s->second.ops.find(it->second);
      if (op != s->second.ops.end()) t = &op->second;
    }
    if (t == nullptr || t->server != server) {
      it = idx->second.erase(it);  // released or moved
      continue;
    }
    if (t->phase == Phase::kDispatched) out.push_back(*it);
    ++it;
  }
  return out;
}

bool Broker::Impl::StillNamed(const std::string& server) {
  auto idx = at_server_.find(server);
  if (idx == at_server_.end()) return false;
  for (auto it = idx->second.begin(); it != idx->second.end();) {
    auto s = sessions_.find(it->first);
    if (s != sessions_.end()) {
      auto op = s->second.ops.find(it->second);
      if (op != s->second.ops.end() && op->second.server == server) {
        return true;
      }
    }
    it = idx->second.erase(it);
  }
  return false;
}

void Broker::Impl::ScheduleProbe(const SessionId& sid, Seq seq, Track& t,
                                 Time due) {
  t.due = due;
  probe_queue_.push_back(ProbeEntry{due, sid, seq});
}

void Broker::Impl::DrainQueue(const std::string& service, Time now) {
  auto it = services_.find(service);
  if (it == services_.end()) return;
  Service& svc = it->second;
  auto& queue = svc.queue;
  auto pop = [&svc] {
    svc.queued_bytes -= svc.queue.front().bytes;
    svc.queue.pop_front();
  };
  while (!queue.empty()) {
    const SessionId sid = queue.front().session;
    const Seq seq = queue.front().seq;
    auto s = sessions_.find(sid);
    if (s == sessions_.end()) {
      pop();
      continue;
    }
    auto t = s->second.ops.find(seq);
    if (t == s->second.ops.end() || t->second.phase != Phase::kQueued) {
      pop();
      continue;
    }
    std::string server;
    if (!PickServer(service, server)) return;
    pop();
    // Dispatch picks again; with credit just seen it takes the same path.
    Dispatch(sid, seq, t->second, now);
  }
}

// A broker-made outcome: retained like a server's response, so a resend of
// the same seq gets the same answer and is never dispatched.
void Broker::Impl::Answer(const SessionId& sid, Session& s, Seq seq,
                          ErrorCode status) {
  if (status == ErrorCode::kInDoubt) {
    Bump(counters_.answered_in_doubt);
  } else {
    Bump(counters_.answered_errors);
  }
  CountCode(answered_by_code_, status);
  auto [it, created] = s.ops.try_emplace(seq);
  Track& t = it->second;
  if (created) t.phase = Phase::kAnswered;  // never counted as unanswered
  MarkAnswered(s, t);
  const std::size_t before = TrackBytes(t);
  std::string bytes = EncodeHeader(Response{sid, seq, status});
  t.response_header.rebuild(bytes.data(), bytes.size());
  t.response_payload.rebuild(std::size_t{0});
  Reaccount(s, before, t);
  if (s.holder.alive) {
    SendEnvelope(s.holder.route, t.response_header, t.response_payload);
  }
}

bool Broker::Impl::Idempotent(const std::string& service) const {
  auto it = services_.find(service);
  return it != services_.end() && it->second.spec.idempotent;
}

// The one server that named a forgotten session, if the broker can still
// reach it under the journal it named the session from, for `service`.
bool Broker::Impl::HolderOfForgotten(const ForgottenSessions::Entry& e,
                                     const std::string& service) const {
  if (e.ambiguous) return false;
  auto it = servers_.find(e.server);
  if (it == servers_.end()) return false;
  const ServerPeer& srv = it->second;
  if (!srv.holder.alive || srv.holder.journal_id != e.journal) return false;
  return std::any_of(
      srv.services.begin(), srv.services.end(),
      [&service](const ServiceSpec& spec) { return spec.name == service; });
}

void Broker::Impl::Forget(const SessionId& sid, const std::string& server,
                          JournalId journal, Seq highest) {
  const std::uint64_t dropped = forgotten_.dropped();
  forgotten_.Remember(sid, server, journal, highest);
  counters_.forgotten_sessions.store(forgotten_.size(),
                                     std::memory_order_relaxed);
  counters_.forgotten_dropped.store(forgotten_.dropped(),
                                    std::memory_order_relaxed);
  if (forgotten_.dropped() != dropped) {
    LogOnce("forgotten-dropped",
            "more than " + std::to_string(options_.max_forgotten_sessions) +
                " forgotten sessions: the oldest is dropped, and a resend "
                "of its client may run on another server "
                "(--max-forgotten-sessions)");
  }
}

void Broker::Impl::AnswerConflict(const std::string& route,
                                  const Request& req) {
  Bump(counters_.conflicts);
  LogOnce("conflict:" + req.session,
          "session " + Printable(req.session) + " sent seq " +
              std::to_string(req.seq) +
              " again with another request; answered conflict");
  std::string bytes =
      EncodeHeader(Response{req.session, req.seq, ErrorCode::kConflict});
  zmq::message_t header(bytes.data(), bytes.size());
  zmq::message_t payload;
  SendEnvelope(route, header, payload);
}

Track& Broker::Impl::NewTrack(Session& s, Seq seq) {
  Track& t = s.ops[seq];
  const std::size_t before = TrackBytes(t);
  t = Track{};
  Reaccount(s, before, t);
  ++s.unanswered;
  return t;
}

void Broker::Impl::Reaccount(Session& s, std::size_t before, const Track& t) {
  const std::size_t after = TrackBytes(t);
  // Unsigned arithmetic: the totals are right whichever way it moved.
  s.bytes = s.bytes - before + after;
  retained_bytes_ = retained_bytes_ - before + after;
  counters_.retained_bytes.store(retained_bytes_, std::memory_order_relaxed);
}

void Broker::Impl::Refuse(const std::string& route,
                          std::atomic<std::uint64_t>& c, const char* kind,
                          const std::string& text, MessageType ref,
                          const SessionId& sid, Seq seq) {
  Bump(c);
  SendError(route, ErrorCode::kLimitExceeded, text, ref, sid, seq);
  const Time now = Clock::now();
  auto [it, fresh] = refusal_log_.try_emplace(kind, Time{}, 0);
  ++it->second.second;
  if (fresh || now - it->second.first >= std::chrono::seconds(1)) {
    spdlog::warn("rejoin-broker: refused ({}, {} since last logged): {}", kind,
                 it->second.second, Printable(text));
    it->second = {now, 0};
  }
}

void Broker::Impl::MarkAnswered(Session& s, Track& t) {
  if (t.phase != Phase::kAnswered && s.unanswered > 0) --s.unanswered;
  ReturnCredit(t);
  t.phase = Phase::kAnswered;
  if (t.has_request) {
    t.digest =
        proto::RequestDigest(t.service, transport::View(t.request_payload));
    t.has_digest = true;
  }
  t.has_request = false;
  const std::size_t before = TrackBytes(t);
  t.request_header.rebuild(std::size_t{0});
  t.request_payload.rebuild(std::size_t{0});
  Reaccount(s, before, t);
}

void Broker::Impl::ReplayResponse(const SessionId& sid, Session& s, Track& t) {
  Bump(counters_.responses_replayed);
  if (options_.replay_hold.count() == 0) {
    SendEnvelope(s.holder.route, t.response_header, t.response_payload);
    return;
  }
  // Whether it waits is decided at the end of the turn (ReleaseHeldReplays),
  // once the requests that came with the resend count as out at servers.
  std::vector<HeldReplay>& held = held_[s.holder.route];
  if (held_.size() == 1 && held.empty()) {
    held_due_ = Clock::now() + options_.replay_hold;
  }
  held.push_back(HeldReplay{sid, transport::Share(t.response_header),
                            transport::Share(t.response_payload)});
}

void Broker::Impl::ReturnCredit(Track& t) {
  if (!t.credit_taken) return;
  t.credit_taken = false;
  auto it = servers_.find(t.server);
  if (it != servers_.end() && it->second.in_flight > 0) {
    --it->second.in_flight;
  }
}

void Broker::Impl::ReleaseOne(Session& s, std::map<Seq, Track>::iterator it) {
  Track& t = it->second;
  if (t.phase != Phase::kAnswered && s.unanswered > 0) --s.unanswered;
  ReturnCredit(t);
  if (!t.server.empty()) {
    if (auto idx = at_server_.find(t.server); idx != at_server_.end()) {
      idx->second.erase({s.id, it->first});
    }
  }
  const std::size_t before = TrackBytes(t);
  s.ops.erase(it);
  s.bytes -= before;
  retained_bytes_ -= before;
  counters_.retained_bytes.store(retained_bytes_, std::memory_order_relaxed);
}

void Broker::Impl::ReleaseBelow(Session& s, Seq below) {
  while (!s.ops.empty() && s.ops.begin()->first < below) {
    ReleaseOne(s, s.ops.begin());
  }
}

// ---- RESPONSE -------------------------------------------------------------

void Broker::Impl::OnResponse(const std::string& route, const Response& resp,
                              Time now) {
  const Connection* c = Known(route, MessageType::kResponse, now);
  if (c == nullptr) return;
  ServerPeer* srv = ServerOf(route, *c);
  if (srv == nullptr) {
    Bump(counters_.fenced);
    return;
  }
  const std::string server_id = c->server;
  Bump(counters_.responses);
  auto sit = sessions_.find(resp.session);
  if (sit == sessions_.end()) return;  // nobody to give it to; server keeps it
  Session& s = sit->second;
  s.highest = std::max(s.highest, resp.seq);
  auto it = s.ops.find(resp.seq);
  std::string service;
  if (it != s.ops.end()) {
    Track& t = it->second;
    if (t.phase == Phase::kAnswered) {
      // A second response for one operation (a resend crossed the first):
      // the client already has, or will get, the retained one.
      return;
    }
    if (t.phase == Phase::kDispatched && t.server != server_id) {
      // It was moved to another server after this one's lease; the client
      // is answered by that one. This server learns on release.
      return;
    }
    service = t.service;
    if (t.phase == Phase::kDispatched && t.dispatched != Time{}) {
      latency_.Observe(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now -
                                                                t.dispatched)
              .count()));
    }
    MarkAnswered(s, t);
    if (t.server != server_id) {
      t.server = server_id;
      at_server_[server_id].emplace(resp.session, resp.seq);
    }
    const std::size_t before = TrackBytes(t);
    t.response_header = reader_.TakeHeader();
    t.response_payload = reader_.TakePayload();
    Reaccount(s, before, t);
    if (s.holder.alive) {
      SendEnvelope(s.holder.route, t.response_header, t.response_payload);
    }
  } else if (s.holder.alive && resp.seq >= 1) {
    // Untracked (broker restarted, or already released): the client
    // deduplicates, and a response it is waiting for must not be lost.
    zmq::message_t header = reader_.TakeHeader();
    zmq::message_t payload = reader_.TakePayload();
    SendEnvelope(s.holder.route, header, payload);
  }
  if (!service.empty()) {
    DrainQueue(service, now);
  } else {
    for (const ServiceSpec& spec : srv->services) DrainQueue(spec.name, now);
  }
}

// ---- ACK ------------------------------------------------------------------

void Broker::Impl::OnAck(const std::string& route, const Ack& ack,
                         Frames& frames, Time now) {
  const Connection* c = Known(route, MessageType::kAck, now, ack.session);
  if (c == nullptr) return;
  Session* sp = HeldSession(route, *c, ack.session, MessageType::kAck);
  if (sp == nullptr) {
    Bump(counters_.fenced);
    return;
  }
  Session& s = *sp;
  // An ACK can only confirm what was issued: one above the highest seq the
  // broker has seen would release (at the broker and at every server) seqs
  // the client has yet to use, and every later call of the session would
  // be taken for one already completed. Refused, nothing changed.
  const Seq top = ack.seqs.empty()
                      ? ack.completed_watermark - 1
                      : std::max(ack.completed_watermark - 1, ack.seqs.back());
  if (top > s.highest) {
    Bump(counters_.protocol_violations);
    LogOnce("ack-above:" + route, "ACK of session " + Printable(ack.session) +
                                      " confirms seq " + std::to_string(top) +
                                      " above the highest issued (" +
                                      std::to_string(s.highest) + "): refused");
    SendError(route, ErrorCode::kProtocolViolation,
              "ACK above the highest seq issued for the session (" +
                  std::to_string(s.highest) + ")",
              MessageType::kAck, ack.session, top);
    return;
  }
  ReleaseBelow(s, ack.completed_watermark);
  for (Seq seq : ack.seqs) {
    auto it = s.ops.find(seq);
    if (it != s.ops.end() && it->second.phase == Phase::kAnswered) {
      ReleaseOne(s, it);
    }
  }
  for (const std::string& id : s.servers) {
    auto srv = servers_.find(id);
    if (srv == servers_.end() || !srv->second.holder.alive) continue;
    out_[srv->second.holder.route].AddEncoded(frames.header, {}, false);
  }
}

// ---- STATE_EXCHANGE -------------------------------------------------------

void Broker::Impl::OnStateExchange(const std::string& route,
                                   const StateExchange& se, Time now) {
  // A client's exchange is about the one session its vector names.
  const SessionId about = se.role == Role::kClient && se.clients.size() == 1
                              ? se.clients[0].session
                              : SessionId{};
  const Connection* c = Known(route, MessageType::kStateExchange, now, about);
  if (c == nullptr) return;
  Bump(counters_.state_exchanges);
  spdlog::debug("rejoin-broker: STATE_EXCHANGE from a {}{}",
                se.role == Role::kServer ? "server" : "session",
                se.last ? " (last)" : "");
  if (se.role == Role::kClient) {
    Session* sp = about.empty() ? nullptr
                                : HeldSession(route, *c, about,
                                              MessageType::kStateExchange);
    if (sp == nullptr) {
      SendError(route, ErrorCode::kProtocolViolation,
                "client STATE_EXCHANGE must carry one vector, of a session "
                "this connection holds",
                MessageType::kStateExchange, about);
      return;
    }
    Session& s = *sp;
    const ClientVector& cv = se.clients[0];
    const SessionId& sid = cv.session;
    // The client's own account of the seqs it issued (it may predate this
    // broker).
    s.highest = std::max(s.highest, cv.next_seq - 1);
    ReleaseBelow(s, cv.completed_watermark);
    for (Seq seq : cv.completed) {
      auto it = s.ops.find(seq);
      if (it != s.ops.end() && it->second.phase == Phase::kAnswered) {
        ReleaseOne(s, it);
      }
    }
    RecoverSession to_client{sid, cv.completed_watermark, {}};
    for (Seq seq : cv.pending) {
      auto it = s.ops.find(seq);
      if (it == s.ops.end()) {
        if (InGrace(now)) {
          s.deferred.push_back(seq);
        } else {
          // Nobody reported it and every dispatched operation is tracked:
          // the request never got past the broker.
          to_client.ops.push_back(
              {seq, Breakpoint::kRequestLost, Action::kResendRequest});
        }
        continue;
      }
      Track& t = it->second;
      switch (t.phase) {
        case Phase::kAnswered:
          ReplayResponse(sid, s, t);
          break;
        case Phase::kDispatched:
          ScheduleProbe(sid, seq, t, now);
          break;
        case Phase::kQueued:
        case Phase::kHeldForGrace:
          break;
      }
    }
    if (!to_client.ops.empty()) SendRecover(route, std::move(to_client));
    // Servers learn what the client has completed (an ACK may have been
    // lost on the way).
    std::vector<OpDecision> releases;
    for (Seq seq : cv.completed) {
      releases.push_back({seq, Breakpoint::kAckLost, Action::kRelease});
    }
    for (const std::string& id : s.servers) {
      auto srv = servers_.find(id);
      if (srv == servers_.end() || !srv->second.holder.alive) continue;
      SendRecover(srv->second.holder.route,
                  RecoverSession{sid, cv.completed_watermark, releases});
    }
    return;
  }

  ServerPeer* srv = ServerOf(route, *c);
  if (srv == nullptr || !se.clients.empty()) {
    SendError(route, ErrorCode::kProtocolViolation,
              "server STATE_EXCHANGE from a connection that is not a server",
              MessageType::kStateExchange);
    return;
  }
  const std::string server_id = c->server;
  std::uint64_t refused = 0;
  for (const ServerVector& sv : se.servers) {
    if (sv.server != server_id) continue;  // not its to report
    auto sit = sessions_.find(sv.session);
    if (sit == sessions_.end()) {
      // Sessions only a server reports count against max_sessions and the
      // server's own quota; beyond them they stay with the server alone.
      if (sessions_.size() >= options_.max_sessions ||
          srv->reported_sessions >= options_.max_reported_sessions_per_server) {
        ++refused;
        if (!sv.held.empty()) {
          Seq top = 0;
          for (const HeldOp& op : sv.held) top = std::max(top, op.seq);
          Forget(sv.session, server_id, sv.journal_id, top);
        }
        continue;
      }
      sit = sessions_.emplace(sv.session, Session{}).first;
      sit->second.id = sv.session;
      ++srv->reported_sessions;
      Bump(counters_.sessions);
    }
    Session& s = sit->second;
    s.last_activity = now;
    s.servers.insert(server_id);
    std::vector<Seq> to_ask;
    for (const HeldOp& op : sv.held) {
      s.highest = std::max(s.highest, op.seq);
      auto it = s.ops.find(op.seq);
      if (it == s.ops.end()) {
        Track& t = NewTrack(s, op.seq);
        t.phase = Phase::kDispatched;
        t.server = server_id;
        at_server_[server_id].emplace(sv.session, op.seq);
        t.server_journal = sv.journal_id;
        to_ask.push_back(op.seq);
        continue;
      }
      Track& t = it->second;
      switch (t.phase) {
        case Phase::kAnswered:
          // The client may never have confirmed it (a lost ACK): ask.
          to_ask.push_back(op.seq);
          continue;
        case Phase::kDispatched:
          if (t.server != server_id) continue;  // moved; the other answers
          break;
        case Phase::kQueued:
        case Phase::kHeldForGrace:
          // Waiting for exactly this report: it goes to its holder.
          t.phase = Phase::kDispatched;
          t.server = server_id;
          at_server_[server_id].emplace(sv.session, op.seq);
          break;
      }
      t.server_journal = sv.journal_id;
      to_ask.push_back(op.seq);
    }
    if (to_ask.empty()) continue;
    if (s.holder.alive) {
      // Ask the client what it has, then decide (FLOWS §5).
      const std::uint64_t id = next_probe_id_++;
      probes_[id] = PendingProbe{
          ProbeKind::kClient, server_id, sv.session, to_ask, sv, now};
      SendTo(s.holder.route, Probe{id, sv.session, to_ask});
      Bump(counters_.probes);
    }
    // Held resends for these seqs can go to their holder now.
    for (Seq seq : to_ask) {
      Track& t = s.ops[seq];
      if (t.phase == Phase::kDispatched && t.has_request) {
        SendRequestTo(sv.session, seq, t, server_id, now);
      }
    }
  }
  if (refused > 0) {
    Refuse(route, counters_.refused_reported_sessions, "reported sessions",
           "STATE_EXCHANGE: " + std::to_string(refused) +
               " sessions not tracked: the broker holds " +
               std::to_string(sessions_.size()) + " of " +
               std::to_string(options_.max_sessions) +
               " sessions and this server reported " +
               std::to_string(srv->reported_sessions) + " of its " +
               std::to_string(options_.max_reported_sessions_per_server),
           MessageType::kStateExchange);
  }
  // After its held operations are tracked, so that ending the grace period
  // here finds them.
  if (se.last) ServerReported(server_id, now);
}

// ---- PROBE_REPLY ----------------------------------------------------------

DecisionContext Broker::Impl::ContextFor(const Track* t,
                                         const ServerPeer* server,
                                         bool server_journal_lost) const {
  DecisionContext ctx;
  ctx.server_journal_lost = server_journal_lost;
  const ServiceSpec* spec = nullptr;
  if (t != nullptr && !t->service.empty()) {
    auto it = services_.find(t->service);
    if (it != services_.end()) spec = &it->second.spec;
  }
  if (spec == nullptr && server != nullptr && server->services.size() == 1) {
    spec = &server->services[0];
  }
  if (spec != nullptr) {
    ctx.idempotent = spec->idempotent;
    ctx.policy = spec->policy;
  }
  // Unknown service on a multi-service server: the conservative reading
  // (not idempotent, answer IN_DOUBT) is the default of DecisionContext.
  return ctx;
}

void Broker::Impl::ApplyServerDecision(const SessionId& sid, Session& s,
                                       const OpDecision& d,
                                       const std::string& server_id,
                                       RecoverSession& to_server, Time now) {
  auto it = s.ops.find(d.seq);
  switch (d.action) {
    case Action::kNone:
    case Action::kKeepOrphan:
      if (d.action == Action::kKeepOrphan) {
        Bump(counters_.orphans);
        to_server.ops.push_back(d);
      }
      return;
    case Action::kWait:
      if (it != s.ops.end()) {
        ScheduleProbe(sid, d.seq, it->second, now + options_.probe);
      }
      return;
    case Action::kResendRequest:
      if (it != s.ops.end() && it->second.has_request) {
        SendRequestTo(sid, d.seq, it->second, server_id, now);
      } else if (s.holder.alive) {
        SendRecover(s.holder.route, RecoverSession{sid, 1, {d}});
      }
      return;
    case Action::kResendResponse:
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
    case Action::kRelease:
      to_server.ops.push_back(d);
      if (it != s.ops.end() && it->second.phase == Phase::kDispatched) {
        ScheduleProbe(sid, d.seq, it->second, now + options_.probe);
      }
      return;
  }
}

void Broker::Impl::OnProbeReply(const std::string& route,
                                const ProbeReply& reply, Time now) {
  const Connection* c = Known(route, MessageType::kProbeReply, now);
  if (c == nullptr) return;
  auto pit = probes_.find(reply.probe_id);
  if (pit == probes_.end()) return;  // late or duplicate
  PendingProbe probe = std::move(pit->second);
  probes_.erase(pit);
  auto sit = sessions_.find(probe.session);
  if (sit == sessions_.end()) return;
  Session& s = sit->second;
  auto srv_it = servers_.find(probe.server);
  ServerPeer* srv = srv_it == servers_.end() ? nullptr : &srv_it->second;
  if (srv == nullptr) return;

  if (probe.kind == ProbeKind::kServer) {
    if (ServerOf(route, *c) != srv || reply.role != Role::kServer ||
        reply.servers.size() != 1 ||
        reply.servers[0].session != probe.session) {
      return;
    }
    const ServerVector& sv = reply.servers[0];
    RecoverSession to_server{probe.session, 1, {}};
    for (Seq seq : probe.seqs) {
      auto it = s.ops.find(seq);
      if (it == s.ops.end() || it->second.phase != Phase::kDispatched ||
          it->second.server != probe.server) {
        continue;
      }
      Track& t = it->second;
      const ServerOpView view = ViewOf(sv, seq);
      const bool lost = sv.journal_id != t.server_journal;
      const bool same = t.same_answers > 0 &&
                        view.state == t.last_answer.state &&
                        view.restarted_since_received ==
                            t.last_answer.restarted_since_received;
      t.same_answers = same ? t.same_answers + 1 : 1;
      t.last_answer = view;
      // t.server_journal stays the journal the request went to: every later
      // probe must read "no record" from a newer journal as "forgotten".
      DecisionContext ctx = ContextFor(&t, srv, lost);
      ctx.same_answers = t.same_answers;
      OpDecision d = DecideOp(seq, ClientOpState::kSent, view, ctx);
      NoteDecision(probe.session, d, "probe");
      if (ctx.same_answers >= kMaxSameProbeAnswers &&
          d.action == Action::kAnswerInDoubt) {
        // The probe ends (FLOWS.md §4): what was asked of the parties did
        // not change the answer, so the broker answers in their place, as
        // for a server past its lease. A late RESPONSE finds it answered.
        Bump(counters_.probes_ended);
        LogOnce("probe-ended:" + probe.server,
                "operations at server " + Printable(probe.server) +
                    " got the same probe answer " +
                    std::to_string(ctx.same_answers) +
                    " times: answered in_doubt");
        Answer(probe.session, s, seq, ErrorCode::kInDoubt);
        continue;
      }
      ApplyServerDecision(probe.session, s, d, probe.server, to_server, now);
    }
    if (!to_server.ops.empty()) {
      SendRecover(srv->holder.route, std::move(to_server));
    }
    return;
  }

  // A client's answer to "what do you have of these?" after a server return.
  if (c->role != Role::kClient || s.holder.route != route ||
      reply.role != Role::kClient || reply.clients.size() != 1) {
    return;
  }
  const ClientVector& cv = reply.clients[0];
  const ServerVector& sv = probe.server_vector;
  // A client with a new journal restarted its seqs above every old one, so
  // the old operations fall below its watermark and are released: the
  // vectors alone say so, and client_journal_lost stays false.
  SessionDecision decision = Decide(cv, sv, ContextFor(nullptr, srv, false));
  RecoverSession to_server{probe.session, decision.release_below, {}};
  RecoverSession to_client{probe.session, decision.release_below, {}};
  for (OpDecision d : decision.ops) {
    // Only what was asked about: other pending seqs of the client may be in
    // flight to other servers, and "not held here" says nothing about them.
    if (!std::binary_search(probe.seqs.begin(), probe.seqs.end(), d.seq)) {
      continue;
    }
    auto it = s.ops.find(d.seq);
    if (it != s.ops.end() && !it->second.service.empty()) {
      d = DecideOp(d.seq, cv.StateOf(d.seq), ViewOf(sv, d.seq),
                   ContextFor(&it->second, srv, false));
    }
    NoteDecision(probe.session, d, "state_exchange");
    if (ActorOf(d.action) == Actor::kClient) {
      to_client.ops.push_back(d);
    } else {
      ApplyServerDecision(probe.session, s, d, probe.server, to_server, now);
    }
  }
  ReleaseBelow(s, decision.release_below);
  if (srv->holder.alive) SendRecover(srv->holder.route, std::move(to_server));
  if (!to_client.ops.empty()) SendRecover(route, std::move(to_client));
}

// ===========================================================================
// Timers
// ===========================================================================

void Broker::Impl::Tick(Time now) {
  if (now >= next_peer_check_) {
    CheckPeers(now);
    next_peer_check_ = now + options_.heartbeat / 2;
  }
  SendProbes(now);
  if (!grace_over_handled_ && !InGrace(now)) EndGrace(now);
  ExpireLeases(now);
  CheckRoster(now);
  // Probes whose replies never came are forgotten; the operations they were
  // about get probed again from the queue.
  for (auto it = probes_.begin(); it != probes_.end();) {
    if (now - it->second.sent > options_.probe * 4) {
      it = probes_.erase(it);
    } else {
      ++it;
    }
  }
}

void Broker::Impl::CheckPeers(Time now) {
  const auto timeout = options_.heartbeat * 3;
  std::vector<std::string> dead;
  for (auto& [id, srv] : servers_) {
    if (srv.holder.alive && now - srv.holder.last_heard > timeout) {
      dead.push_back(id);
    }
  }
  for (const std::string& id : dead) {
    Bump(counters_.servers_silent);
    spdlog::info("rejoin-broker: server {} silent for {} ms", Printable(id),
                 timeout.count());
    MarkServerDead(id, now);
  }
  // A client connection's silence is the death of every session on it; each
  // is told when the connection next speaks (Heard).
  for (auto& [route, c] : routes_) {
    if (c.role != Role::kClient || c.silent || now - c.last_heard <= timeout) {
      continue;
    }
    c.silent = true;
    for (const SessionId& sid : c.sessions) {
      auto s = sessions_.find(sid);
      if (s == sessions_.end() || !s->second.holder.alive) continue;
      s->second.holder.alive = false;
      s->second.holder.dead_since = now;
      c.untold.push_back(sid);
    }
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    if (!s.client_seen && !s.ops.empty() &&
        now - s.last_activity > options_.reported_session_expiry) {
      // Only servers ever reported it, and its client has not come for
      // reported_session_expiry: the broker forgets its tracking. The
      // servers keep their records; the client, if it ever returns, finds
      // them through its own state exchange (FLOWS.md §10).
      Bump(counters_.expired_reported_sessions);
      for (const auto& [seq, t] : s.ops) {
        if (!t.server.empty())
          Forget(it->first, t.server, t.server_journal, s.highest);
      }
      while (!s.ops.empty()) ReleaseOne(s, s.ops.begin());
    }
    if (!s.holder.alive && s.ops.empty() &&
        now - std::max(s.last_activity, s.holder.dead_since) >
            kIdleSessionExpiry) {
      Detach(it->first, s);
      it = sessions_.erase(it);
      counters_.sessions.fetch_sub(1, std::memory_order_relaxed);
    } else {
      ++it;
    }
  }
}

void Broker::Impl::SendProbes(Time now) {
  // (server, session) -> seqs due for a probe.
  std::map<std::pair<std::string, SessionId>, std::vector<Seq>> due;
  while (!probe_queue_.empty() && probe_queue_.front().due <= now) {
    ProbeEntry e = std::move(probe_queue_.front());
    probe_queue_.pop_front();
    auto s = sessions_.find(e.session);
    if (s == sessions_.end()) continue;
    auto t = s->second.ops.find(e.seq);
    if (t == s->second.ops.end()) continue;
    Track& track = t->second;
    if (track.phase != Phase::kDispatched || track.due > now) continue;
    auto srv = servers_.find(track.server);
    if (srv == servers_.end() || !srv->second.holder.alive) {
      // Waits for the server's return or its lease; look again later.
      ScheduleProbe(e.session, e.seq, track, now + options_.probe);
      continue;
    }
    due[{track.server, e.session}].push_back(e.seq);
    // If this probe or its reply is lost, probe again.
    ScheduleProbe(e.session, e.seq, track, now + options_.probe * 2);
  }
  for (auto& [key, seqs] : due) {
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    const std::uint64_t id = next_probe_id_++;
    probes_[id] =
        PendingProbe{ProbeKind::kServer, key.first, key.second, seqs, {}, now};
    Bump(counters_.probes);
    SendTo(servers_[key.first].holder.route, Probe{id, key.second, seqs});
  }
}

// Called when the grace period runs out, or earlier when every server the
// roster listed at start has reported (ServerReported).
void Broker::Impl::EndGrace(Time now) {
  grace_over_handled_ = true;
  const bool early = now < grace_end_;
  grace_end_ = std::min(grace_end_, now);
  const auto lasted =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - start_)
          .count();
  counters_.grace_ms.store(
      static_cast<std::uint64_t>(std::max<std::int64_t>(lasted, 0)),
      std::memory_order_relaxed);
  if (early) {
    Bump(counters_.grace_ended_early);
    spdlog::info(
        "rejoin-broker: grace ended after {} ms: all {} listed servers "
        "returned",
        lasted, roster_listed_);
  } else if (roster_on_) {
    if (roster_trusted_ && !roster_awaiting_.empty()) {
      std::string ids;
      for (const std::string& id : roster_awaiting_) {
        ids += " " + Printable(id);
      }
      spdlog::info(
          "rejoin-broker: grace ran its full {} ms: {} of {} listed servers "
          "did not report:{}",
          lasted, roster_awaiting_.size(), roster_listed_, ids);
    }
    if (!roster_.complete) {
      // The full grace period has run: from now on this broker treats a
      // server that has not reported as gone, as it would without a roster,
      // and every server it welcomed is listed. The next broker may trust
      // the list as far as the time-based grace period could be trusted.
      roster_.complete = true;
      SaveRoster();
    }
  }
  for (auto& [sid, s] : sessions_) {
    for (auto& [seq, t] : s.ops) {
      if (t.phase != Phase::kHeldForGrace) continue;
      Dispatch(sid, seq, t, now);
    }
    if (s.deferred.empty()) continue;
    RecoverSession to_client{sid, 1, {}};
    for (Seq seq : s.deferred) {
      if (s.ops.count(seq) != 0) continue;  // a server reported it meanwhile
      to_client.ops.push_back(
          {seq, Breakpoint::kRequestLost, Action::kResendRequest});
    }
    s.deferred.clear();
    if (!to_client.ops.empty() && s.holder.alive) {
      SendRecover(s.holder.route, std::move(to_client));
    }
  }
}

void Broker::Impl::ExpireLeases(Time now) {
  for (auto& [id, srv] : servers_) {
    if (srv.holder.alive || srv.lease_expired ||
        now - srv.holder.dead_since < options_.lease) {
      continue;
    }
    srv.lease_expired = true;
    srv.in_flight = 0;
    spdlog::info("rejoin-broker: lease of server {} expired", Printable(id));
    for (const auto& [sid, seq] : DispatchedAt(id)) {
      Session& s = sessions_.find(sid)->second;
      {
        Track& t = s.ops.find(seq)->second;
        t.credit_taken = false;
        const ServiceSpec* spec = nullptr;
        if (auto svc = services_.find(t.service); svc != services_.end()) {
          spec = &svc->second.spec;
        } else if (srv.services.size() == 1) {
          spec = &srv.services[0];
        }
        if (spec != nullptr && spec->idempotent) {
          Bump(counters_.moved);
          if (t.has_request) {
            t.phase = Phase::kQueued;
            if (t.service.empty()) t.service = spec->name;
            Dispatch(sid, seq, t, now);
          } else if (s.holder.alive) {
            // The client holds the request; have it sent again.
            t.phase = Phase::kHeldForGrace;
            SendRecover(s.holder.route,
                        RecoverSession{sid,
                                       1,
                                       {{seq, Breakpoint::kUnknown,
                                         Action::kResendRequest}}});
          }
        } else {
          Answer(sid, s, seq, ErrorCode::kInDoubt);
        }
      }
    }
    // Drops the index entries of the operations just moved elsewhere.
    (void)DispatchedAt(id);
  }
  // Queued work of a service that has had no server for a whole lease.
  for (auto& [name, svc] : services_) {
    if (!svc.servers.empty() || svc.queue.empty() ||
        now - svc.empty_since < options_.lease) {
      continue;
    }
    while (!svc.queue.empty()) {
      const SessionId sid = svc.queue.front().session;
      const Seq seq = svc.queue.front().seq;
      svc.queued_bytes -= svc.queue.front().bytes;
      svc.queue.pop_front();
      auto s = sessions_.find(sid);
      if (s == sessions_.end()) continue;
      auto t = s->second.ops.find(seq);
      if (t == s->second.ops.end() || t->second.phase != Phase::kQueued) {
        continue;
      }
      Answer(sid, s->second, seq,
             svc.registered ? ErrorCode::kUnavailable
                            : ErrorCode::kUnknownService);
    }
  }
}

// ===========================================================================
// Roster
// ===========================================================================
//
// The roster ends the grace period early; it never decides an operation.
// Its one invariant: every server that a broker keeping the file may have
// dispatched to, and that may still hold an operation its client waits for,
// is listed, or the file says `partial`. A server is listed before its first
// WELCOME; the removals below each argue why the server can no longer hold
// such an operation, or what is given up compared with the time-based grace
// period.

Status Broker::Impl::LoadRoster() {
  using broker_internal::kMaxRosterEpochs;
  const std::string& path = options_.roster;
  auto lock = broker_internal::RosterLock::Acquire(path);
  if (!lock.ok()) return lock.status();
  roster_lock_ = std::move(*lock);
  auto read = broker_internal::ReadRoster(path);
  if (read.ok()) {
    roster_ = std::move(*read);
    roster_trusted_ = roster_.complete;
    spdlog::info("rejoin-broker: roster {}: {} servers listed{}", path,
                 roster_.servers.size(),
                 roster_.complete ? "" : ", partial: full grace period");
  } else if (read.status().code() == ErrorCode::kNotFound) {
    spdlog::info("rejoin-broker: roster {} not found: full grace period", path);
  } else {
    spdlog::warn("rejoin-broker: roster unusable ({}): full grace period",
                 read.status().ToString());
  }
  roster_epochs_.insert(roster_.epochs.begin(), roster_.epochs.end());
  roster_awaiting_ = roster_.servers;
  roster_unreturned_ = roster_.servers;
  roster_listed_ = roster_.servers.size();
  // This broker's epoch is recorded before any endpoint is welcomed, so the
  // next broker recognises endpoints that come from this one.
  roster_.epochs.push_back(epoch_);
  if (roster_.epochs.size() > kMaxRosterEpochs) {
    roster_.epochs.erase(roster_.epochs.begin(),
                         roster_.epochs.end() - kMaxRosterEpochs);
  }
  roster_on_ = true;
  counters_.roster_servers.store(roster_.servers.size());
  return broker_internal::WriteRoster(path, roster_);
}

bool Broker::Impl::SaveRoster() {
  if (!roster_on_) return true;
  Status s = broker_internal::WriteRoster(options_.roster, roster_);
  if (s.ok()) {
    roster_unsafe_ = false;
    counters_.roster_servers.store(roster_.servers.size(),
                                   std::memory_order_relaxed);
    return true;
  }
  // A roster that cannot be kept must not mislead the next broker: without
  // a file it runs the full grace period.
  if (::unlink(options_.roster.c_str()) == 0 || errno == ENOENT) {
    spdlog::error(
        "rejoin-broker: {}; roster removed and no longer kept: the next "
        "start runs the full grace period",
        s.ToString());
    roster_on_ = false;
    roster_unsafe_ = false;
    counters_.roster_servers.store(0, std::memory_order_relaxed);
    return true;
  }
  LogOnce("roster-write",
          "cannot write or remove the roster (" + s.ToString() +
              "): HELLOs that need it changed, and all while a change is "
              "pending, are refused until it can be");
  return false;
}

bool Broker::Impl::VouchedByRoster(const Hello& hello, Time now) {
  if (!roster_on_) return true;
  // An endpoint last welcomed by a broker that did not keep this file (one
  // started without --roster, or with another file) may have had work
  // dispatched to servers the file never heard of. During the grace period
  // that makes the roster partial: this broker runs the full grace period,
  // and so does the next one if this one dies first. After the grace period
  // it changes nothing: this broker already treats unreported servers as
  // gone. (Endpoints that restarted since say last_epoch 0 and cannot be
  // checked; keeping one roster for all brokers is the operator's part.)
  const bool stranger = hello.last_epoch != 0 && hello.last_epoch != epoch_ &&
                        roster_epochs_.count(hello.last_epoch) == 0;
  if (stranger && roster_.complete && InGrace(now)) {
    spdlog::warn(
        "rejoin-broker: '{}' was last welcomed by broker epoch {:016x}, "
        "which did not keep roster {}: full grace period",
        Printable(hello.id), hello.last_epoch, options_.roster);
    roster_trusted_ = false;
    roster_.complete = false;
    roster_unsafe_ = true;
  }
  return !roster_unsafe_ || SaveRoster();
}

bool Broker::Impl::ListInRoster(const std::string& server_id) {
  if (!roster_on_) return true;
  if (roster_.servers.insert(server_id).second) roster_unsafe_ = true;
  return !roster_unsafe_ || SaveRoster();
}

void Broker::Impl::ServerReported(const std::string& server_id, Time now) {
  auto it = servers_.find(server_id);
  if (it != servers_.end()) it->second.reported = true;
  roster_awaiting_.erase(server_id);
  // Every listed server has returned and told what it holds: an operation
  // nobody reported is held by no server a broker dispatched to.
  if (roster_trusted_ && roster_awaiting_.empty() && !grace_over_handled_ &&
      InGrace(now)) {
    EndGrace(now);
  }
}

void Broker::Impl::DropFromRoster(const std::vector<std::string>& ids,
                                  const char* why) {
  std::string names;
  for (const std::string& id : ids) {
    roster_.servers.erase(id);
    names += " " + Printable(id);
  }
  spdlog::info("rejoin-broker: dropped from the roster ({}):{}", why, names);
  // A failed write leaves the servers listed: more waiting, never less.
  SaveRoster();
}

void Broker::Impl::CheckRoster(Time now) {
  if (!roster_on_ || now < next_roster_check_) return;
  // A scan of every tracked operation, while a server is leaving: often
  // enough to notice, rarely enough to cost nothing.
  next_roster_check_ =
      now + std::clamp<Clock::duration>(options_.lease / 2,
                                        std::chrono::milliseconds(20),
                                        std::chrono::seconds(1));

  // Listed servers that did not return within the grace period plus a
  // lease. This broker already decided their clients' pending operations
  // without them when its grace period ended, as it would without a roster;
  // keeping them would make every later restart wait the full grace period
  // for servers that are not coming back. What is given up: a client absent
  // for this broker's whole life whose operation such a server holds, if
  // both come back within a grace period of some later restart; without a
  // roster the same server would be missed if it came back any later.
  if (!roster_swept_ && now >= roster_sweep_at_) {
    roster_swept_ = true;
    std::vector<std::string> gone;
    for (const std::string& id : roster_unreturned_) {
      if (roster_.servers.count(id) != 0) gone.push_back(id);
    }
    roster_unreturned_.clear();
    if (!gone.empty()) {
      DropFromRoster(gone,
                     "did not return within the grace period and a lease");
    }
  }

  // Servers that left: said GOODBYE (it had finished every handler and sent
  // every response first) or outlived their lease (their unanswered work
  // was moved to another server or answered in_doubt). They are
  // dropped only once they had reported everything to this broker and no
  // operation this broker tracks names them any more: each operation they
  // ran, held or were answered in doubt for has been acknowledged by its
  // client (released), and those moved elsewhere are idempotent. What such
  // a server may still keep in its journal is then COMPLETED at its client,
  // which never sends it again, so no later broker needs to wait for it. If
  // it comes back, it is listed again before its WELCOME.
  std::set<std::string> leaving;
  for (const auto& [id, srv] : servers_) {
    if (!srv.holder.alive && srv.reported &&
        (srv.said_goodbye || srv.lease_expired) &&
        roster_.servers.count(id) != 0) {
      leaving.insert(id);
    }
  }
  for (auto it = leaving.begin(); it != leaving.end();) {
    it = StillNamed(*it) ? leaving.erase(it) : std::next(it);
  }
  if (!leaving.empty()) {
    DropFromRoster({leaving.begin(), leaving.end()},
                   "left and holds nothing a client waits for");
  }
}

// ===========================================================================
// Output
// ===========================================================================

void Broker::Impl::SendTo(const std::string& route, const Message& m,
                          zmq::message_t* payload) {
  out_[route].Add(m, payload);
}

// Answers for the others are on their way to the connection when every
// session with a held replay still has kReplayHoldInFlight operations out at
// servers; otherwise nothing may come to carry the replays soon.
bool Broker::Impl::AnswersComing(const std::vector<HeldReplay>& held) const {
  for (const HeldReplay& r : held) {
    auto s = sessions_.find(r.session);
    if (s == sessions_.end() || s->second.unanswered < kReplayHoldInFlight) {
      return false;
    }
  }
  return true;
}

void Broker::Impl::ReleaseHeldReplays(Time now) {
  if (held_.empty()) return;
  const bool due = now >= held_due_;
  for (auto it = held_.begin(); it != held_.end();) {
    auto out = out_.find(it->first);
    const bool company = out != out_.end() && !out->second.empty();
    if (!due && !company && AnswersComing(it->second)) {
      for (HeldReplay& r : it->second) {
        if (!std::exchange(r.waited, true)) Bump(counters_.replays_held);
      }
      ++it;
      continue;
    }
    // A connection that went away meanwhile gets nothing: its client
    // resends after it returns.
    if (routes_.count(it->first) != 0) {
      for (HeldReplay& r : it->second) {
        SendEnvelope(it->first, r.header, r.payload);
      }
    }
    it = held_.erase(it);
  }
  // Replays held after the first are released with it when it falls due,
  // a little early rather than late.
  if (held_.empty()) held_due_ = Time::max();
}

void Broker::Impl::FlushOut(Time now) {
  ReleaseHeldReplays(now);
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
    for (const std::string& route : gone) {
      auto it = routes_.find(route);
      if (it == routes_.end()) continue;
      if (it->second.role == Role::kClient) {
        DropClientConnection(route, now);
      } else if (ServerOf(route, it->second) != nullptr) {
        MarkServerDead(it->second.server, now);
      }
    }
  }
}

void Broker::Impl::SendEnvelope(const std::string& route,
                                zmq::message_t& header,
                                zmq::message_t& payload) {
  if (options_.inject_loss > 0.0 && loss_(rng_)) {
    Bump(counters_.injected_drops);
    return;
  }
  if (options_.fault) {
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
  if (!options_.fault(point)) return false;
  Bump(counters_.injected_drops);
  return true;
}

void Broker::Impl::SendRecover(const std::string& route, RecoverSession block) {
  Bump(counters_.recover_messages);
  Recover r{epoch_, {}};
  r.sessions.push_back(std::move(block));
  SendTo(route, r);
}

void Broker::Impl::SendError(const std::string& route, ErrorCode code,
                             std::string text, MessageType ref,
                             const SessionId& sid, Seq seq) {
  CountCode(errors_by_code_, code);
  Error e;
  e.code = code;
  if (text.size() > 1024) text.resize(1024);
  e.message = std::move(text);
  e.ref_type = static_cast<std::uint8_t>(ref);
  if (IsValidId(sid)) e.session = sid;
  e.seq = seq;
  SendTo(route, e);
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
      if (id != ZMQ_EVENT_ACCEPT_FAILED) continue;
      Bump(counters_.accept_failures);
      const Time now = Clock::now();
      if (now - accept_failure_logged_ >= std::chrono::seconds(1)) {
        accept_failure_logged_ = now;
        spdlog::error(
            "rejoin-broker: cannot accept a connection: {} ({} failed "
            "accepts so far); raise the descriptor limit",
            std::strerror(static_cast<int>(value)),
            counters_.accept_failures.load(std::memory_order_relaxed));
      }
    }
  } catch (const zmq::error_t&) {
  }
}

void Broker::Impl::LogOnce(const std::string& key, const std::string& text) {
  if (logged_.size() > 10000) return;  // bounded: a flood logs nothing more
  if (logged_.insert(key).second) spdlog::warn("rejoin-broker: {}", text);
}

// ===========================================================================
// Broker
// ===========================================================================

Result<std::unique_ptr<Broker>> Broker::Bind(BrokerOptions options) {
  if (options.heartbeat.count() <= 0 || options.probe.count() <= 0 ||
      options.grace.count() < 0 || options.lease.count() <= 0) {
    return Result<std::unique_ptr<Broker>>(
        ErrorCode::kInvalidArgument, "timers must be positive (grace >= 0)");
  }
  if (options.inject_loss < 0.0 || options.inject_loss >= 1.0) {
    return Result<std::unique_ptr<Broker>>(ErrorCode::kInvalidArgument,
                                           "inject_loss must be in [0, 1)");
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
  auto impl = std::make_unique<Impl>(std::move(options));
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

}  // namespace rejoin
