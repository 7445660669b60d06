// BrokerCore: the broker's routing and recovery state machine
// (libproto/FLOWS.md) with no sockets, no clock reads and no files. Its
// shell (broker.cpp) reads and decodes messages and hands each one in with
// the connection (routing id) it came from and the time; timers run in
// Tick(now). What the core sends goes to an Outbox the shell provides, and
// the roster file (PROTOCOL.md §6.5) is reached only through a RosterStore,
// so tests drive the whole broker with decoded messages and a fake clock.
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
// The core's jobs, one file each: admission and fencing (admission.cpp);
// operations, credit and queues (operations.cpp); bounds and accounting
// (bounds.cpp); tracking and probes (tracking.cpp); grace period, leases and
// liveness (timers.cpp); the roster (roster_keeper.cpp); the status snapshot
// (status.cpp); and the entry points and output (broker_core.cpp).
//
// Threading: one thread calls every method except Snapshot(), which reads
// atomic counters and may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "access.h"
#include "core/tables.h"
#include "forgotten.h"
#include "rejoin/broker/broker.h"
#include "rejoin/proto/metrics.h"
#include "roster.h"

namespace rejoin::broker_internal {

// Where the core's messages go. The shell batches them per connection and
// sends each batch at the end of the turn; tests record them.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // `m` (no payload frame) to the connection `route`.
  virtual void Send(const std::string& route, const Message& m) = 0;
  // A REQUEST or RESPONSE whose frames the core keeps: the outbox shares or
  // copies them, never takes them.
  virtual void Envelope(const std::string& route, zmq::message_t& header,
                        zmq::message_t& payload) = 0;
  // Already-encoded header bytes of a message without payload (an ACK passed
  // on to servers).
  virtual void Forward(const std::string& route, std::string_view header) = 0;
  // Something waits for `route` in this turn's batch.
  virtual bool Waiting(const std::string& route) const = 0;
  // Sends `m` at once, outside the batch, to learn whether the connection
  // is still there: false when it is gone.
  virtual bool SendNow(const std::string& route, const Message& m) = 0;
};

// The roster file, as the core sees it (the shell implements it with
// roster.h).
class RosterStore {
 public:
  virtual ~RosterStore() = default;
  // Replaces the file durably. Errors: kIoError (the file is unchanged).
  virtual Status Write(const RosterContents& contents) = 0;
  // Removes the file; true when it is gone (or was never there).
  virtual bool Remove() = 0;
  // The file's name, for logs.
  virtual const std::string& name() const = 0;
};

// The frames of the message being handled: REQUEST and RESPONSE keep theirs
// (zero copy where the transport allows).
class InFrames {
 public:
  virtual ~InFrames() = default;
  virtual std::string_view header() const = 0;
  virtual std::string_view payload() const = 0;
  // Each may be taken once.
  virtual zmq::message_t TakeHeader() = 0;
  virtual zmq::message_t TakePayload() = 0;
};

class BrokerCore {
 public:
  // `options` must have passed Broker::Bind's checks. `out` outlives the
  // core.
  BrokerCore(const BrokerOptions& options, Epoch epoch, Outbox& out);
  BrokerCore(const BrokerCore&) = delete;
  BrokerCore& operator=(const BrokerCore&) = delete;

  // Keeps the roster in `store` (outlives the core), starting from what the
  // file said (`read`: its contents, kNotFound, or why it is unusable).
  // Errors: kIoError when the file cannot be written.
  Status KeepRoster(RosterStore& store, Result<RosterContents> read);
  // The broker starts serving: the grace period runs from `now`.
  void Start(Time now);
  // The grace period is over (every server this life waited for reported,
  // or the wait ran out); once true, it stays true.
  bool grace_over() const { return grace_over_handled_; }

  // The keys file in force (access.h), owned by the shell, which sets it
  // again after each reload; nullptr (the default): no CURVE, every peer is
  // the anonymous principal and nothing is checked.
  void SetAccessPolicy(const AccessPolicy* policy) { access_ = policy; }
  // A decoded message from the connection `route`, sent by `principal`
  // (the name the keys file gives the key it was authenticated with; empty
  // without CURVE).
  void OnMessage(const std::string& route, Message& msg, InFrames& frames,
                 Time now, std::string_view principal = {});
  // A message that did not decode: `status` says why; `header` is its
  // header (empty when the framing itself was bad).
  void OnUndecodable(const std::string& route, const Status& status,
                     std::string_view header);
  // Timers: liveness, probes, the grace period, leases, the roster.
  void Tick(Time now);
  // The end of a turn, before the shell sends its batches: held replays that
  // may go now are added to them.
  void EndTurn(Time now);
  // A send found the connection `route` gone.
  void OnGone(const std::string& route, Time now);
  // The broker is leaving: GOODBYE to each connection that holds a live id.
  void Shutdown();

  // When the earliest held replay falls due (Time::max() when none).
  Time held_due() const { return held_due_; }
  Epoch epoch() const { return epoch_; }
  // Everything the core holds now, except what only the shell knows
  // (endpoint, shell counters).
  void FillStatus(BrokerStatus& st, Time now) const;
  BrokerStats Snapshot() const;

 private:
  // ---- inbound (broker_core.cpp and the handlers' files) -------------------
  void OnHello(const std::string& route, const Hello& hello, Time now);
  void OnRequest(const std::string& route, const Request& req, InFrames& frames,
                 Time now);
  void OnResponse(const std::string& route, const Response& resp,
                  InFrames& frames, Time now);
  void OnAck(const std::string& route, const Ack& ack, InFrames& frames,
             Time now);
  void OnStateExchange(const std::string& route, const StateExchange& se,
                       Time now);
  void OnProbeReply(const std::string& route, const ProbeReply& reply,
                    Time now);
  void OnGoodbye(const std::string& route, const Goodbye& goodbye, Time now);

  // ---- principals (access_checks.cpp) --------------------------------------
  // The ids `msg` names for its sender belong to the sender's principal,
  // and a server's HELLO lists only services it may serve: false after
  // answering ERROR not_authorized (docs/SECURITY.md).
  bool Permitted(const std::string& route, const Message& msg);
  // The principal of the message being handled may call / serve `service`
  // (always, without a keys file).
  bool MayCall(const std::string& service) const {
    return access_ == nullptr || access_->MayCall(principal_, service);
  }
  bool MayServe(const std::string& service) const {
    return access_ == nullptr || access_->MayServe(principal_, service);
  }
  void NotAuthorized(const std::string& route, std::string text,
                     MessageType ref, const SessionId& sid = {}, Seq seq = 0);

  // ---- admission and fencing (admission.cpp) -------------------------------
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
  Welcome WelcomeFor(const Hello& hello, Time now) const;
  bool HolderGone(Holder& holder);
  // A session leaves the connection it is on (if any); the connection's
  // entry goes once it holds nothing more.
  void Detach(const SessionId& sid, Session& s);
  // Every session on a client connection is dead and leaves it: the
  // connection said GOODBYE for all of them, or it is gone.
  void DropClientConnection(std::string route, Time now);
  void MarkServerDead(const std::string& id, Time now);
  void RegisterServices(const std::string& id, ServerPeer& server);

  // ---- operations, credit and queues (operations.cpp) ----------------------
  void Dispatch(const SessionId& sid, Seq seq, Track& t, Time now);
  bool PickServer(const std::string& service, std::string& out);
  void SendRequestTo(const SessionId& sid, Seq seq, Track& t,
                     const std::string& server, Time now);
  // Every track enters through NewTrack and leaves the unanswered count
  // through MarkAnswered or ReleaseOne, so the count stays exact.
  Track& NewTrack(Session& s, Seq seq);
  void MarkAnswered(Session& s, Track& t);
  void Answer(const SessionId& sid, Session& s, Seq seq, ErrorCode status);
  // RESPONSE `conflict` for a REQUEST reusing the seq of a kept answer.
  void AnswerConflict(const std::string& route, const Request& req);
  void ReplayResponse(const SessionId& sid, Session& s, Track& t, Time now);
  // The client completed everything below `below` / the tracked `it`.
  void ReleaseBelow(Session& s, Seq below);
  void ReleaseCompleted(Session& s, std::map<Seq, Track>::iterator it);
  // The client confirmed `seq` completed: a later REQUEST for it is a
  // journal gone back in time (Session::completed_above).
  void NoteCompleted(Session& s, Seq seq);
  void ReleaseOne(Session& s, std::map<Seq, Track>::iterator it);
  void ReturnCredit(Track& t);
  void DrainQueue(const std::string& service, Time now);
  // The operations dispatched to `server` and unanswered, from at_server_
  // (entries that no longer hold are dropped on the way): the cost is that
  // server's operations, not every operation the broker tracks.
  std::vector<std::pair<SessionId, Seq>> DispatchedAt(
      const std::string& server);
  // Some tracked operation still names `server` (dispatched, or answered by
  // it and not yet released).
  bool StillNamed(const std::string& server);

  // ---- bounds and accounting (bounds.cpp) ----------------------------------
  // A new REQUEST of `incoming` bytes for session `s` fits the bounds that
  // ACKs or answers lift again; false after refusing it.
  bool WithinBounds(const std::string& route, const Request& req,
                    const Session& s, std::size_t incoming, Time now);
  // The frames a track keeps changed from `before` bytes: the session's and
  // the broker's totals follow (BrokerOptions::max_session_bytes,
  // max_memory_bytes).
  void Reaccount(Session& s, std::size_t before, const Track& t);
  // The session's, its connection's and the broker's byte totals gain `add`
  // and lose `remove`.
  void AddBytes(Session& s, std::size_t add, std::size_t remove);
  // One more / one fewer unanswered operation of `s` (and its connection).
  void CountUnanswered(Session& s);
  void UncountUnanswered(Session& s);
  // `s` is now held by the client connection `c` / by none: the
  // connection's totals take in / give back the session's.
  void Attach(Session& s, Connection& c);
  void Unattach(Session& s);
  // Forgotten sessions (forgotten.h): the service's handler is idempotent;
  // the one server that named a forgotten session can still be reached
  // under the journal it named it from, for `service`; a session is
  // forgotten while `server` may hold its operations up to `highest`.
  bool Idempotent(const std::string& service) const;
  bool HolderOfForgotten(const ForgottenSessions::Entry& e,
                         const std::string& service) const;
  void Forget(const SessionId& sid, const std::string& server,
              JournalId journal, Seq highest);
  // A bound was exceeded: ERROR limit_exceeded to `route`, counted in `c`,
  // logged at most once a second per kind.
  void Refuse(const std::string& route, std::atomic<std::uint64_t>& c,
              const char* kind, const std::string& text, MessageType ref,
              Time now, const SessionId& sid = {}, Seq seq = 0);

  // ---- tracking and probes (tracking.cpp) ----------------------------------
  void ScheduleProbe(const SessionId& sid, Seq seq, Track& t, Time due);
  // How long after a probe of `t` the next one comes (tracking.cpp).
  std::chrono::milliseconds ProbeBackoff(const Track& t) const;
  static constexpr int kMaxProbeBackoff = 32;  // probe delays
  void SendProbes(Time now);
  DecisionContext ContextFor(const Track* t, const ServerPeer* server,
                             bool server_journal_lost) const;
  void ApplyServerDecision(const SessionId& sid, Session& s,
                           const OpDecision& d, const std::string& server_id,
                           RecoverSession& to_server, Time now);
  // Counts a recovery decision and logs it as one structured line
  // (FLOWS.md §11) unless it asks nothing of anyone.
  void NoteDecision(const SessionId& sid, const OpDecision& d,
                    const char* source);

  // ---- grace period, leases and liveness (timers.cpp) ----------------------
  void CheckGrace(Time now);
  void EndGrace(Time now);
  // A live server welcomed in this life that has not reported, if any.
  const std::string* AwaitingReport() const;
  void ExpireLeases(Time now);
  void CheckPeers(Time now);
  bool InGrace(Time now) const { return now < grace_end_; }

  // ---- roster (roster_keeper.cpp) ------------------------------------------
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

  // ---- output (broker_core.cpp) --------------------------------------------
  void SendTo(const std::string& route, const Message& m) {
    out_.Send(route, m);
  }
  void SendEnvelope(const std::string& route, zmq::message_t& header,
                    zmq::message_t& payload) {
    out_.Envelope(route, header, payload);
  }
  struct HeldReplay {
    SessionId session;
    zmq::message_t header, payload;
    bool waited = false;  // kept past the turn it came in (replays_held)
  };
  // Answers for the others are on their way to the connection.
  bool AnswersComing(const std::vector<HeldReplay>& held) const;
  void SendRecover(const std::string& route, RecoverSession block);
  void SendError(const std::string& route, ErrorCode code, std::string text,
                 MessageType ref = MessageType{0}, const SessionId& sid = {},
                 Seq seq = 0);
  void LogOnce(const std::string& key, const std::string& text);
  static void CountCode(std::uint64_t (&counts)[kWireCodeCount],
                        ErrorCode code) {
    const auto i = static_cast<std::size_t>(code);
    if (i < kWireCodeCount) ++counts[i];
  }

  const BrokerOptions options_;
  const Epoch epoch_;
  Outbox& out_;
  const AccessPolicy* access_ = nullptr;
  // The sender of the message being handled (valid during OnMessage).
  std::string_view principal_;
  std::unordered_map<std::string, std::vector<HeldReplay>> held_;
  // Servers whose credit came back in this turn: a server's credit is
  // shared by its services, so every one of their queues may move on.
  std::vector<std::string> credit_returned_;
  Time held_due_ = Time::max();
  Time start_{};
  Time grace_end_{};
  bool grace_over_handled_ = false;
  bool grace_extended_ = false;  // G ran out with a server unreported

  // The roster: what the file says (roster_), and what this broker learned
  // from it at start.
  RosterStore* roster_store_ = nullptr;
  bool roster_on_ = false;       // a roster file is kept
  bool roster_trusted_ = false;  // read complete at start: grace may end early
  bool roster_unsafe_ = false;   // the file may lack what roster_ has
  RosterContents roster_;
  std::set<Epoch> roster_epochs_;            // brokers that kept it before us
  std::set<std::string> roster_awaiting_;    // listed at start, not reported
  std::set<std::string> roster_unreturned_;  // listed at start, no HELLO yet
  std::size_t roster_listed_ = 0;            // listed at start
  Time roster_sweep_at_{};
  bool roster_swept_ = false;
  Time next_roster_check_{};

  // Dispatch-to-answer times and decisions by action.
  LatencyHistogram latency_;
  std::uint64_t decisions_[kActionCount] = {};
  // RESPONSEs the broker answered itself and ERRORs it sent, by wire code.
  std::uint64_t answered_by_code_[kWireCodeCount] = {};
  std::uint64_t errors_by_code_[kWireCodeCount] = {};

  std::unordered_map<SessionId, Session> sessions_;
  std::unordered_map<std::string, ServerPeer> servers_;
  std::unordered_map<std::string, Service> services_;
  std::size_t unregistered_services_ = 0;
  std::unordered_map<std::string, Connection> routes_;
  // Probes due, earliest first; an entry whose track was rescheduled since
  // is skipped when it comes up (Track::due).
  std::priority_queue<ProbeEntry, std::vector<ProbeEntry>,
                      std::greater<ProbeEntry>>
      probe_queue_;
  std::unordered_map<std::uint64_t, PendingProbe> probes_;
  std::uint64_t next_probe_id_ = 1;
  ForgottenSessions forgotten_{options_.max_forgotten_sessions};
  Time next_peer_check_{};

  std::set<std::string> logged_;
  // Refusal log lines: kind -> (last logged, refusals since).
  std::map<std::string, std::pair<Time, std::uint64_t>> refusal_log_;
  std::size_t retained_bytes_ = 0;  // frames kept by every track
  // server id -> (session, seq) of operations dispatched to it: added at
  // dispatch, removed at release, checked when read (DispatchedAt).
  std::unordered_map<std::string, std::set<std::pair<SessionId, Seq>>>
      at_server_;
  mutable Counters counters_;
};

}  // namespace rejoin::broker_internal
