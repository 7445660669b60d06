// rejoin::Broker: routes REQUEST/RESPONSE envelopes between clients and
// servers and coordinates recovery (libproto/FLOWS.md). It keeps no durable
// state needed for correctness: everything it knows it rebuilds from the
// endpoints after a restart. An optional roster file (BrokerOptions::roster)
// only lets a restarted broker end its grace period early.
//
// Threading: Run() owns the socket and all state and must be called from one
// thread; Stop() and stats() may be called from any thread. Start() runs Run()
// on an internal thread (for tests and embedding). No method throws.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rejoin/proto/messages.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

struct FaultInjection;  // rejoin/broker/fault_injection.h

// Replays are held back (BrokerOptions::replay_hold) only for a session with
// at least this many operations out at servers: the pipelined clients whose
// losses are found by the order of answers (libclient's RttEstimator uses the
// same bound), and whose resend timers are a backstop several round trips
// long.
inline constexpr std::uint64_t kReplayHoldInFlight = 16;

struct BrokerOptions {
  std::string endpoint = "tcp://127.0.0.1:5555";
  // CurveZMQ (docs/SECURITY.md): the broker's key pair file and the keys
  // file (who may connect, as which principal, to call and serve what).
  // Both or neither. With them every connection is encrypted and
  // authenticated, and ids are bound to principals; without them peers are
  // anonymous and trusted, and the endpoint must be a loopback address
  // (tcp://127.0.0.1, tcp://[::1], tcp://localhost), ipc or inproc unless
  // `insecure` is set.
  std::string curve_key_file;
  std::string keys_file;
  bool insecure = false;
  std::chrono::milliseconds heartbeat{200};
  std::chrono::milliseconds grace{500};
  // Path of the roster file (PROTOCOL.md §6.5): the server ids that have
  // registered, written durably before a new one is welcomed. After a
  // restart the grace period ends as soon as every listed server has
  // returned and reported. Empty: no roster, the full grace period after
  // every start. A missing or corrupt file also means the full grace period.
  // Bind fails (kIoError) when the file cannot be written or another broker
  // keeps it.
  std::string roster;
  std::chrono::milliseconds probe{50};
  // How long operations stay with a dead server before they are moved to
  // another server (idempotent services) or answered IN_DOUBT.
  std::chrono::milliseconds lease{2000};
  std::uint32_t max_sessions = 100000;
  std::uint32_t max_message_bytes = 1024 * 1024;  // per payload
  std::uint32_t max_outstanding = 4096;           // unanswered per session
  std::uint32_t max_queue = 100000;               // queued per service
  // Bounds against peers that fill the broker's tables (FLOWS.md §10). Each
  // refusal is ERROR limit_exceeded to the peer over its bound, counted and
  // logged at most once a second per kind.
  // Sessions one connection may carry: a HELLO flood from one connection
  // cannot take the whole max_sessions from other clients.
  std::uint32_t max_sessions_per_connection = 1024;
  // Sessions one server's STATE_EXCHANGE may add to the table (they count
  // against max_sessions too); the rest stay with the server alone.
  std::uint32_t max_reported_sessions_per_server = 10000;
  // A session only servers reported, whose client never came, is forgotten
  // after this long without activity.
  std::chrono::milliseconds reported_session_expiry{std::chrono::minutes(10)};
  // Sessions the broker forgot (expired, or reported beyond a quota) while
  // a server may still hold their operations: which server named each and
  // up to which seq, so that their client's resends go back to that server
  // or are answered in_doubt, never run on another (FLOWS.md §10). The
  // oldest are dropped beyond this many (~100 bytes each), and counted.
  std::uint32_t max_forgotten_sessions = 100000;
  // Answers a session's client has not acknowledged, in number and in bytes
  // (requests kept for recovery count in the bytes): beyond either, its
  // new REQUESTs are refused until ACKs free room.
  std::uint32_t max_session_unacked = 4096;
  std::uint64_t max_session_bytes = 64ull << 20;
  // Unanswered operations and kept bytes of all the sessions one client
  // connection carries together: however many sessions a peer opens on one
  // connection, its new REQUESTs are refused beyond these, and the broker's
  // budget stays with the others.
  std::uint32_t max_connection_outstanding = 16384;
  std::uint64_t max_connection_bytes = 256ull << 20;
  // Request bytes queued per service (beside max_queue, a count).
  std::uint64_t max_queue_bytes = 256ull << 20;
  // Request and response bytes the broker keeps overall: new REQUESTs are
  // refused beyond it (answers of requests already taken are still kept).
  std::uint64_t max_memory_bytes = 1ull << 30;
  // A resent REQUEST whose answer the broker kept is answered from that
  // copy. When at least kReplayHoldInFlight other operations of the session
  // are out at servers at the end of the broker's turn (calls that came in
  // the resend's batch included), that replay waits for the next batch
  // leaving for the same client connection, at most this long: sent alone
  // it would start a batch of one that keeps circling (the client's callback
  // answers it with one new call, which travels alone). 0: replay at once.
  std::chrono::milliseconds replay_hold{2};
  Epoch epoch = 0;  // 0: drawn at random
};

// Cumulative counters. Read with stats() from any thread.
struct BrokerStats {
  std::uint64_t sessions = 0;  // known now
  // Endpoint connections that hold an id now: a server's, or one carrying
  // one or more client sessions.
  std::uint64_t connections = 0;
  std::uint64_t servers = 0;   // alive now
  std::uint64_t requests = 0;  // dispatched to a server (first time)
  std::uint64_t responses = 0;
  std::uint64_t forwarded_resends = 0;   // resends passed to the holder
  std::uint64_t responses_replayed = 0;  // from the broker's retained copy
  std::uint64_t replays_held = 0;        // of those, kept for a later batch
  std::uint64_t probes = 0;
  std::uint64_t recover_messages = 0;
  std::uint64_t state_exchanges = 0;
  std::uint64_t moved = 0;  // re-dispatched after a server's lease
  std::uint64_t answered_in_doubt = 0;
  std::uint64_t answered_errors = 0;  // too_large, unknown_service, ...
  std::uint64_t injected_drops = 0;   // by a FaultInjection
  std::uint64_t malformed = 0;        // undecodable frames of any kind
  std::uint64_t bad_version = 0;
  std::uint64_t unknown_type = 0;
  std::uint64_t too_large = 0;
  std::uint64_t unknown_peer = 0;  // messages from connections without HELLO
  std::uint64_t fenced = 0;
  std::uint64_t duplicate_identity = 0;
  std::uint64_t orphans = 0;
  // The grace period after start: its length once over (0 while it runs),
  // and 1 when the roster ended it before BrokerOptions::grace.
  std::uint64_t grace_ms = 0;
  std::uint64_t grace_ended_early = 0;
  std::uint64_t roster_servers = 0;  // listed in the roster now
  // Servers declared dead because nothing came from their connection for
  // 3 heartbeat intervals (PROTOCOL.md §6.7).
  std::uint64_t servers_silent = 0;
  // Welcomed servers whose STATE_EXCHANGE did not come within 3 heartbeat
  // intervals, asked to HELLO again (ERROR unknown_session) so they report.
  std::uint64_t reports_asked_again = 0;
  // Well-formed messages refused as wrong in context (ERROR
  // protocol_violation), e.g. an ACK above the session's highest seq.
  std::uint64_t protocol_violations = 0;
  // Operations whose probes got the same answer kMaxSameProbeAnswers times
  // and that the broker then answered in_doubt (FLOWS.md §4).
  std::uint64_t probes_ended = 0;
  // Refusals by bound (ERROR limit_exceeded), see BrokerOptions.
  std::uint64_t refused_session_quota = 0;      // sessions per connection
  std::uint64_t refused_sessions = 0;           // max_sessions
  std::uint64_t refused_reported_sessions = 0;  // STATE_EXCHANGEs cut short
  std::uint64_t refused_unacked = 0;            // per-session unacknowledged
  std::uint64_t refused_queue_bytes = 0;        // per-service queued bytes
  std::uint64_t refused_memory = 0;             // max_memory_bytes
  std::uint64_t refused_connection = 0;  // max_connection_outstanding/bytes
  std::uint64_t expired_reported_sessions = 0;
  // Forgotten sessions (BrokerOptions::max_forgotten_sessions): remembered
  // now, dropped beyond the bound, and untracked REQUESTs of theirs sent
  // back to the one server that named them or answered in_doubt.
  std::uint64_t forgotten_sessions = 0;
  std::uint64_t forgotten_dropped = 0;
  std::uint64_t forgotten_routed = 0;
  std::uint64_t forgotten_in_doubt = 0;
  // REQUESTs reusing the seq of an answer the broker keeps for another
  // request (service or payload differ): answered `conflict`, unchanged.
  std::uint64_t conflicts = 0;
  std::uint64_t retained_bytes = 0;  // request/response bytes kept now
  // Connections libzmq could not accept (descriptors exhausted).
  std::uint64_t accept_failures = 0;
  // Connections shut down after a window of silence because descriptors
  // ran out (FLOWS.md §10).
  std::uint64_t connections_shed = 0;
  // Messages refused because their sender's principal may not name that id
  // or call or serve that service (ERROR or RESPONSE not_authorized), and
  // messages dropped because their key is no longer in the keys file.
  std::uint64_t not_authorized = 0;
  std::uint64_t revoked_messages = 0;
};

// What the broker holds now, for operators (rejoin-ctl broker status, the
// metrics endpoint). Taken on the broker's own thread between two turns.
struct ServiceStatus {
  std::string name;
  bool registered = false;    // some server registered it at some point
  std::uint64_t servers = 0;  // alive servers that serve it
  std::uint64_t credit = 0;   // their credit for it, added up
  std::uint64_t queued = 0;   // requests waiting for credit
  std::uint64_t queued_bytes = 0;
};
struct ServerStatus {
  std::string id;
  bool alive = false;
  bool reported = false;  // has told this broker everything it holds
  Incarnation incarnation = 0;
  std::uint64_t credit = 0;
  std::uint64_t in_flight = 0;
  std::vector<std::string> services;
};
struct ConnectionStatus {
  std::string peer;  // the routing id, hex
  bool server = false;
  std::string server_id;       // a server's connection
  std::uint64_t sessions = 0;  // a client connection's sessions
  bool silent = false;         // declared dead after silence
};
// How many recovery decisions of each action the broker made (PROTOCOL.md
// §6.1 action values 0..8), index = action value.
inline constexpr std::size_t kActionCount = 9;
// Wire error codes are below this (PROTOCOL.md §7).
inline constexpr std::size_t kWireCodeCount = 64;
struct BrokerStatus {
  BrokerStats stats;
  Epoch epoch = 0;
  std::string endpoint;
  std::uint64_t uptime_ms = 0;
  bool in_grace = false;
  std::uint64_t grace_remaining_ms = 0;
  std::uint64_t tracked_operations = 0;
  std::vector<ServiceStatus> services;  // by name
  std::vector<ServerStatus> servers;    // by id
  std::vector<ConnectionStatus> connections;
  std::uint64_t decisions[kActionCount] = {};
  // RESPONSEs the broker answered in a server's place, and ERRORs it sent,
  // by wire code (index = ErrorCode value).
  std::uint64_t answered_by_code[kWireCodeCount] = {};
  std::uint64_t errors_by_code[kWireCodeCount] = {};
  // From the dispatch of a request to its server's RESPONSE, in
  // microseconds: upper bounds and the count at or below each (cumulative),
  // then the count and sum of all.
  std::vector<std::uint64_t> latency_bounds_us;
  std::vector<std::uint64_t> latency_cumulative;
  std::uint64_t latency_count = 0;
  std::uint64_t latency_sum_us = 0;
};

class Broker {
 public:
  // Binds the endpoint. Errors: kInvalidArgument (options), kIoError (bind).
  static Result<std::unique_ptr<Broker>> Bind(BrokerOptions options);
  // Bind with losses injected where the broker meets the network
  // (fault_injection.h), for tests and benchmarks. Errors as Bind, and
  // kInvalidArgument for a loss outside [0, 1).
  static Result<std::unique_ptr<Broker>> Bind(BrokerOptions options,
                                              FaultInjection faults);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Serves until Stop(). Returns the reason it ended.
  Status Run();
  // Run() on an internal thread.
  void Start();
  // Ends Run() within a few milliseconds; safe from signal-handling threads
  // and from any other thread.
  void Stop();

  BrokerStats stats() const;
  // A consistent picture taken by the broker's thread at the end of its next
  // turn (within ~20 ms while Run() runs). kUnavailable when Run() is not
  // running or did not answer within `timeout`.
  Result<BrokerStatus> status(std::chrono::milliseconds timeout =
                                  std::chrono::milliseconds(1000)) const;
  Epoch epoch() const;
  // Reads the keys file again (BrokerOptions::keys_file) and, when it
  // parses, puts it in force at the broker's next turn, before any handshake
  // that turn judges (so every handshake that begins after the call is
  // judged by the new file): connections whose key it no longer lists are
  // closed and their sessions and server ids dropped. A file that does not
  // parse changes nothing and is reported (kInvalidArgument with the line,
  // kNotFound, kIoError); kUnavailable when the broker runs without CURVE. Any
  // thread (a SIGHUP handler's).
  Status ReloadKeys();
  // The endpoint actually bound (resolves "tcp://127.0.0.1:*").
  std::string bound_endpoint() const;

 private:
  class Impl;
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace rejoin
