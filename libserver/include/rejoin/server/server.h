// rejoin::Server: runs handlers for one or more services so that each
// operation is executed at most once and answered exactly once, across
// message loss, broker restarts and restarts of this process (same server id
// and journal directory).
//
// Threading: Open() starts one I/O thread (owns the socket and the journal)
// and `concurrency` worker threads that run handlers. Handlers and resolve
// hooks run on worker threads, concurrently with each other (or, with
// ServerOptions::inline_handlers, one at a time on the I/O thread). No method
// throws; an exception escaping a handler is caught and answered as
// kHandlerFailed with its what() text.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rejoin/proto/curve_options.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

// What a handler sees of one operation.
struct RequestView {
  SessionId session;
  Seq seq = 0;
  std::string_view service;
  std::string_view payload;

  // The calling principal: the session id up to its first '/'
  // ("alice/orders" -> "alice"; empty without one). Behind a broker that
  // runs with CURVE and a keys file, a session id always begins with the
  // name of the principal that authenticated (docs/SECURITY.md), so a
  // handler may base its own decisions on it; behind a broker without
  // CURVE, any client may name any id and this proves nothing.
  std::string_view principal() const {
    const std::size_t slash = session.find('/');
    return slash == SessionId::npos
               ? std::string_view()
               : std::string_view(session).substr(0, slash);
  }
};

// What a handler returns. kOk or kHandlerFailed (the payload reaches the
// client either way); other codes are turned into kHandlerFailed.
struct HandlerReply {
  ErrorCode status = ErrorCode::kOk;
  std::string payload;
};

using Handler = std::function<HandlerReply(const RequestView&)>;
// Asked when the execution of an operation is in doubt (the server restarted
// between RECEIVED and EXECUTED). Checks the application's own records and
// returns the reply if the operation was carried out, nullopt if it was not
// (the handler then runs). A reply with status kInDoubt says "cannot tell"
// and is answered as IN_DOUBT; a hook that throws is treated the same way,
// since running the handler could then run the operation twice.
using ResolveHook =
    std::function<std::optional<HandlerReply>(const RequestView&)>;

struct ServiceOptions {
  std::string name;
  Handler handler;
  // Safe to run twice: in-doubt operations are re-executed, and operations
  // of a server that does not return are moved to another server.
  bool idempotent = false;
  InDoubtPolicy policy = InDoubtPolicy::kAnswerInDoubt;
  ResolveHook resolve;  // required when policy is kResolveHook
};

struct ServerOptions {
  std::string endpoint = "tcp://127.0.0.1:5555";
  // CurveZMQ keys for a broker that requires them (docs/SECURITY.md). With
  // CURVE the server id must begin with the principal the broker's keys
  // file names for this key, then '/': "billing/server-1".
  CurveOptions curve;
  std::string server_id;    // durable id, printable ASCII; required
  std::string journal_dir;  // required unless durability is kMemory
  Durability durability = Durability::kProcess;
  // Handlers running at once; also the credit announced to the broker.
  std::uint32_t concurrency = 4;
  // Run handlers on the I/O thread, one at a time, between the commit of a
  // turn's RECEIVED records and the commit of their EXECUTED records, instead
  // of on `concurrency` worker threads. For handlers that take microseconds
  // this saves two thread hand-offs per request; a slow handler stalls the
  // whole server (heartbeats included), so leave it off for those: a handler
  // that runs longer than 3 heartbeat intervals makes the broker declare the
  // server dead (FLOWS.md §1, liveness rule). The credit announced is still
  // `concurrency`, which then bounds the batch.
  bool inline_handlers = false;
  std::chrono::milliseconds heartbeat{200};
  // No message tells a server that a client session has ended. A session
  // with nothing about it (REQUEST, ACK, PROBE, RECOVER) for this long, and
  // no handler of it running, is released: its stored responses, orphans
  // and tombstones are dropped, and a client that returns later is answered
  // in_doubt for what it still waits for (PROTOCOL.md §6.3). Idle time of
  // sessions found in the journal counts from the server's start.
  std::chrono::milliseconds session_expiry{std::chrono::hours(24 * 7)};
};

struct ServerStats {
  std::uint64_t executed = 0;    // handler runs
  std::uint64_t duplicates = 0;  // requests answered from the journal
  std::uint64_t responses_resent = 0;
  std::uint64_t reexecuted = 0;  // in-doubt, re-run
  std::uint64_t resolved = 0;    // in-doubt, settled by the hook
  std::uint64_t answered_in_doubt = 0;
  std::uint64_t released = 0;
  std::uint64_t orphans = 0;
  std::uint64_t state_exchanges = 0;
  std::uint64_t malformed = 0;  // broker messages dropped: undecodable or
                                // not valid for a server to receive
  // REQUESTs for a held seq with another service or payload than the one
  // held, answered `conflict` (the client reused a seq).
  std::uint64_t conflicts = 0;
  // Sessions released after ServerOptions::session_expiry without activity.
  std::uint64_t sessions_expired = 0;
};

class Server {
 public:
  // Opens the journal, starts the threads, connects and registers. Errors:
  // kInvalidArgument (bad id, no services, missing handler or hook),
  // kJournalLocked, kIoError, kCorrupt, kJournalVersion.
  static Result<std::unique_ptr<Server>> Open(
      ServerOptions options, std::vector<ServiceOptions> services);

  // Says GOODBYE, waits for running handlers, commits, stops.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  ServerStats stats() const;
  Incarnation incarnation() const;

  // Ok while the server serves. Once it has stopped for good, the reason:
  // its journal failed (kIoError: disk full, file too large, I/O error), so
  // no record can be written and nothing may be answered any more. The
  // server has then said GOODBYE (the broker's lease rules take over its
  // operations) and does nothing further; it does not retry. The
  // application should log the status and exit non-zero, so that it is
  // restarted once the disk is fixed.
  Status status() const;
  // Blocks until status() is not ok or `timeout` passes; returns status().
  Status WaitForFailure(std::chrono::milliseconds timeout) const;

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rejoin
