// The broker core's tables (broker_core.h): what it knows of sessions,
// servers, services and connections, and the operations it tracks. Plain
// data; the rules that change them live in the core's .cpp files.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/messages.h"
#include "rejoin/proto/state_vector.h"
#include "rejoin/proto/types.h"

namespace rejoin::broker_internal {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;

// Services that requests named but no server has registered, at most.
constexpr std::size_t kMaxUnregisteredServices = 1024;
// Sessions with no live client and nothing tracked are forgotten this long
// after their last activity or their death, whichever is later.
constexpr auto kIdleSessionExpiry = std::chrono::seconds(120);

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
      roster_servers{0}, servers_silent{0}, reports_asked_again{0},
      forgotten_sessions{0}, forgotten_dropped{0}, forgotten_routed{0},
      forgotten_in_doubt{0}, conflicts{0}, refused_connection{0},
      not_authorized{0};
};

// Text a peer sent, made safe for one log line: every byte outside printable
// ASCII (newlines, terminal escapes, UTF-8) and the backslash are written as
// \xNN, and the result is cut at kMaxLoggedPeerText bytes of input, so no
// peer can forge or flood log lines.
constexpr std::size_t kMaxLoggedPeerText = 256;
std::string Printable(std::string_view text);
inline void Bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
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
  // The answer held is the broker's own (an error or in_doubt), not a
  // server's RESPONSE.
  bool broker_answered = false;
  // The request's digest (service and payload), kept from the request into
  // the answer: a REQUEST reusing the seq for other content is answered
  // `conflict`, not with this answer. Unknown for operations only a
  // server's report told of.
  bool has_digest = false;
  std::uint64_t digest = 0;
  zmq::message_t request_header, request_payload;
  zmq::message_t response_header, response_payload;
  Time due{};  // next probe of a dispatched operation
  // Probes sent since the request last went to its server: each waits
  // twice as long as the one before (BrokerCore::ProbeBackoff).
  std::uint8_t probe_round = 0;
  Time dispatched{};  // the latest dispatch, for the latency histogram
  // The server's answer to the last probe of this operation, and how many
  // probes in a row gave it (DecisionContext::same_answers).
  ServerOpView last_answer;
  std::uint32_t same_answers = 0;
};

// Seqs a session's client confirmed above its watermark that the broker
// keeps (Session::completed_above).
inline constexpr std::size_t kMaxCompletedAbove = 4096;

struct Connection;

struct Session {
  SessionId id;
  Holder holder;
  // The client connection that holds it now (holder.route's), whose totals
  // include this session's; null while it is on none.
  Connection* connection = nullptr;
  JournalId previous_journal = 0;
  // Seqs up to this one were issued under a journal the client has since
  // lost (0: none): its vector's word on them means nothing
  // (DecisionContext::client_journal_lost).
  Seq journal_lost_through = 0;
  std::map<Seq, Track> ops;
  std::set<std::string> servers;  // every server that held one of its ops
  std::vector<Seq> deferred;      // pending seqs to decide when grace ends
  std::uint32_t unanswered = 0;
  // The highest seq the broker has seen for the session: in its REQUESTs,
  // a client's STATE_EXCHANGE (next_seq - 1), a server's report or RESPONSE.
  // An ACK above it is refused (PROTOCOL.md §4.5).
  Seq highest = 0;
  // What the client has said it completed: every seq below its completed
  // watermark, and the seqs above it it confirmed one by one (at most
  // kMaxCompletedAbove, the lowest dropped first). The broker released
  // them; a REQUEST for one it no longer tracks comes from a client whose
  // journal went back in time and is answered in_doubt, as a server answers
  // a released seq (PROTOCOL.md §4.3): never dispatched again.
  Seq completed_below = 1;
  std::set<Seq> completed_above;
  // Bytes its tracks keep: their request and response frames, and
  // kTrackOverhead for each track's own table entry.
  std::size_t bytes = 0;
  // A client has held it in this broker's life; a session only servers
  // reported expires after BrokerOptions::reported_session_expiry.
  bool client_seen = false;
  Time last_activity{};
};

struct ServerPeer {
  Holder holder;
  // The principal its connection authenticated as (empty without CURVE).
  std::string principal;
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
  // Not reported by then (its WELCOME or STATE_EXCHANGE lost): asked to
  // HELLO again, so that it reports (FLOWS.md §5). Each fragment of its
  // STATE_EXCHANGE moves this on.
  Time report_due{};
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
  // Orders a std::priority_queue earliest first.
  bool operator>(const ProbeEntry& o) const { return due > o.due; }
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

// What one tracked operation costs beyond its frames: the track itself, its
// node in the session's map and its entry in the per-server index. Counted
// in the session's bytes and the memory budget, so that operations with
// empty payloads are bounded by max_memory_bytes too.
inline constexpr std::size_t kTrackOverhead =
    sizeof(std::pair<const Seq, Track>) + 96;

inline std::size_t TrackBytes(const Track& t) {
  return t.request_header.size() + t.request_payload.size() +
         t.response_header.size() + t.response_payload.size();
}

// The decision's view of one operation in a server's vector.
inline ServerOpView ViewOf(const ServerVector& sv, Seq seq) {
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
  // kClient: the sums over its sessions of Session::unanswered and
  // Session::bytes (BrokerOptions::max_connection_outstanding,
  // max_connection_bytes).
  std::uint64_t unanswered = 0;
  std::size_t bytes = 0;
};

}  // namespace rejoin::broker_internal
