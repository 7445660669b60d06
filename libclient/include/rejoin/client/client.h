// rejoin::Client: a durable client session. Every call is journaled before it
// leaves the process and completed exactly once, across message loss, broker
// restarts, server restarts and restarts of this process (same session id and
// journal directory).
//
// Threading: all methods are thread-safe. One internal I/O thread owns the
// socket and the journal; callbacks run on that thread and must not block
// (hand work off instead). A call made from an application thread while the
// I/O thread sleeps and no other call of the session is in flight (a
// synchronous caller's usual case) is journaled and sent by the calling
// thread itself, under the I/O thread's lock, before the method returns;
// other calls are journaled and sent by the I/O thread's next turn.
// Sessions opened on one ClientConnection share its socket and I/O thread
// (connection.h). No method throws.
//
// Failure model: a per-call deadline ends the *wait* with kDeadlineExceeded;
// the operation stays in the journal, recovery goes on, and its outcome can be
// collected later (Collect), also by a later process on the same journal.
// The wait also ends early, the same way, while the broker shuts the session
// out: kFenced (a newer process holds the session) or kNotAuthorized (the
// broker's keys file does not let this key use the session id); the calls
// go out if the session is admitted later.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rejoin/client/connection.h"
#include "rejoin/client/shared_journal.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

struct ClientOptions {
  // The broker. Ignored when `connection` is set (its endpoint applies).
  std::string endpoint = "tcp://127.0.0.1:5555";
  // CurveZMQ keys for a broker that requires them (docs/SECURITY.md).
  // Ignored when `connection` is set (its keys apply). With CURVE the
  // session id must begin with the principal the broker's keys file names
  // for this key, then '/': "alice/orders".
  CurveOptions curve;
  // Instead of a socket and I/O thread of its own: carry this session over
  // a connection shared with other sessions of the process (connection.h).
  std::shared_ptr<ClientConnection> connection;
  // Durable session id (printable ASCII, <= 128 bytes). Required.
  std::string session_id;
  // Journal directory; locked for the lifetime of the Client. Required
  // unless durability is kMemory.
  std::string journal_dir;
  Durability durability = Durability::kProcess;
  // Instead of a journal of its own: keep this session's records in a
  // journal shared with other sessions of the process, whose commits carry
  // the records of all of them (shared_journal.h). journal_dir must then be
  // empty; the shared journal's durability applies.
  std::shared_ptr<SharedJournal> shared_journal;
  // Calls in flight at once; CallAsync beyond it fails with kLimitExceeded
  // and Call waits for a slot (within its deadline). The broker may lower it
  // (WELCOME.max_outstanding).
  std::uint32_t max_outstanding = 1024;
  // Deadline used when a call passes zero.
  std::chrono::milliseconds default_deadline{10000};
  // Heartbeat interval used until the broker's WELCOME says otherwise.
  std::chrono::milliseconds heartbeat{200};
  // A pending operation with no response for a while is sent again (the
  // client's report that it is still waiting): first after a quantile of
  // the recently measured round trips (1.25 x the 90th percentile while the
  // session has fewer than 16 calls in flight, 1.0 x while it loses 5 % or
  // more of its round trips; 3 x the 99th when busier, when the order of
  // answers reveals most losses sooner; at least 200 us),
  // at most after this; the wait doubles per attempt up to 2 s. Until a
  // round trip has been measured, this value is used.
  std::chrono::milliseconds resend_delay{200};
  // Off: an outcome delivered to its caller (callback or future) is dropped
  // from the journal once the broker has been told of it, which bounds the
  // journal of callers that never Forget. On: completed operations stay
  // until Forget. Outcomes nobody received (deadline passed, process
  // restarted) always stay until Forget.
  bool keep_completed = false;
};

// The outcome of one operation.
struct Reply {
  Seq seq = 0;
  // kOk, kHandlerFailed (payload from the handler), or an error the broker
  // or server answered: kInDoubt, kUnavailable, kUnknownService, kTooLarge,
  // kLimitExceeded.
  ErrorCode status = ErrorCode::kOk;
  std::string payload;
};

// An operation the journal knows, as listed after a restart.
struct OperationInfo {
  Seq seq = 0;
  std::string service;
  ClientOpState state = ClientOpState::kNone;  // kPrepared or kCompleted
};

// Counters, cumulative since Open. Recovery events are also reported to
// ClientOptions-independent observers via SetRecoveryCallback.
struct ClientStats {
  std::uint64_t calls = 0;
  std::uint64_t completed = 0;
  std::uint64_t requests_resent = 0;      // sends with the resend flag
  std::uint64_t responses_recovered = 0;  // completed after a resend/recover
  std::uint64_t in_doubt = 0;             // outcomes with status kInDoubt
  std::uint64_t duplicate_responses = 0;  // dropped: already completed
  std::uint64_t state_exchanges = 0;      // returns (new broker epoch etc.)
  std::uint64_t deadline_exceeded = 0;
  std::uint64_t malformed = 0;  // inbound frames dropped as undecodable
                                // (on the session's connection)
  std::uint64_t welcomes = 0;   // admissions by a broker (WELCOMEs)
  // Calls journaled and sent on the calling thread because the I/O thread
  // was asleep with nothing else to do (the rest leave on its next turn).
  std::uint64_t calls_sent_by_caller = 0;
};

enum class RecoveryEventKind : std::uint8_t {
  kRequestResent = 1,
  kResponseRecovered = 2,
  kInDoubt = 3,
  kBrokerReturned = 4,  // a new broker epoch was seen
  kStateExchanged = 5,
};

struct RecoveryEvent {
  RecoveryEventKind kind;
  Seq seq = 0;  // 0 for session-level events
};

class Client {
 public:
  using Callback = std::function<void(const Result<Reply>&)>;

  // Opens (or creates) the journal, replays it, and starts the I/O thread,
  // which connects and returns to the broker in the background. Errors:
  // kInvalidArgument, kJournalLocked, kIoError, kCorrupt, kJournalVersion.
  static Result<std::unique_ptr<Client>> Open(ClientOptions options);

  // Stops the I/O thread, commits the journal, closes the socket. Waiters get
  // kClosed; operations stay in the journal. Must not run on the I/O thread
  // (from inside a callback).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Issues one operation. The callback runs exactly once on the I/O thread:
  // with the Reply, with kDeadlineExceeded when `deadline` (0: default)
  // passes first, kFenced or kNotAuthorized while the session is shut out
  // (above), or with kClosed at shutdown. Returns the operation's seq, or
  // kLimitExceeded when max_outstanding calls are in flight, kInvalidArgument
  // for a bad service name, kClosed after shutdown began.
  //
  // Durability: the call is journaled (PREPARED) before the request leaves
  // the process: by the I/O thread on its next loop turn, or by this thread
  // before it returns (the case above Threading describes). A crash before
  // that loses the call without trace, and safely: it was never sent, so it
  // never ran. A call ListOperations() shows after a restart is recovered to
  // its one outcome.
  Result<Seq> CallAsync(std::string_view service, std::string_view payload,
                        Callback callback,
                        std::chrono::milliseconds deadline = {});

  // Future form of CallAsync.
  std::future<Result<Reply>> CallFuture(
      std::string_view service, std::string_view payload,
      std::chrono::milliseconds deadline = {});

  // Synchronous call: waits for a slot and then for the outcome, together
  // within `deadline`.
  Result<Reply> Call(std::string_view service, std::string_view payload,
                     std::chrono::milliseconds deadline = {});

  // Operations the journal holds: pending ones (still being recovered) and
  // completed ones not yet forgotten, by seq.
  std::vector<OperationInfo> ListOperations() const;

  // Waits up to `deadline` for the outcome of `seq` (pending or completed).
  // kNotFound for a seq the journal does not hold.
  Result<Reply> Collect(Seq seq, std::chrono::milliseconds deadline = {});

  // Asynchronous Collect: `callback` gets the outcome (or kNotFound,
  // kDeadlineExceeded, kClosed) on the I/O thread, as CallAsync's does. A
  // restarted process collecting many inherited operations sees each
  // outcome as it arrives instead of one after another.
  Status CollectAsync(Seq seq, Callback callback,
                      std::chrono::milliseconds deadline = {});

  // The application has the outcome of `seq`: the journal may drop it.
  // kNotFound / kInvalidArgument (still pending).
  Status Forget(Seq seq);

  // Invoked on the I/O thread for each recovery event. Set before calls.
  void SetRecoveryCallback(std::function<void(const RecoveryEvent&)> cb);

  ClientStats stats() const;
  const std::string& session_id() const;
  Incarnation incarnation() const;

 private:
  class Impl;
  friend class client_internal::Hub;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rejoin
