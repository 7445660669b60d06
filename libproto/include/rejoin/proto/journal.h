// The journal: an append-only, checksummed log of operation state transitions
// kept by every endpoint, and the live state table rebuilt from it on open
// (format in libproto/JOURNAL.md). One process owns a journal directory at a
// time (an advisory lock); one thread uses a Journal object at a time.
//
// Write-ahead use: Append*() buffers a record and applies it to the live
// state; Commit() hands everything buffered to the OS (and in kSync level
// waits for fdatasync) before it returns. The I/O loop appends every record of
// one loop turn and commits once, before any message of that turn leaves the
// process: that one commit is the group commit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "rejoin/proto/journal_env.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

// Which kind of party owns a journal; checked on every open.
enum class JournalRole : std::uint8_t { kClient = 1, kServer = 2 };

// One operation's live record. For a client journal `state` holds a
// ClientOpState value, for a server journal a ServerOpState value.
struct JournalOp {
  std::uint8_t state = 0;
  std::string service;
  // The request while PREPARED/RECEIVED, the response once
  // COMPLETED/EXECUTED, empty once released.
  std::string payload;
  ErrorCode status = ErrorCode::kOk;  // of the response, once there is one
  // The incarnation that wrote the latest state of this operation.
  Incarnation incarnation = 0;
  // The digest of the request (rejoin/proto/request_digest.h), kept with a
  // server's response so that a later REQUEST reusing the seq with other
  // content is told apart (PROTOCOL.md §4.3, `conflict`).
  std::optional<std::uint64_t> digest = std::nullopt;
  bool operator==(const JournalOp&) const = default;
};

struct JournalSession {
  // One past the highest seq ever recorded for the session.
  Seq next_seq = 1;
  // Every seq below it has been released (server) or forgotten (client) and
  // has no entry in `ops`.
  Seq released_below = 1;
  // Live operations at or above released_below, by seq. An entry whose state
  // is kReleased (server) is a tombstone kept for duplicate suppression.
  std::map<Seq, JournalOp> ops;
  bool operator==(const JournalSession&) const = default;
};

struct JournalState {
  std::unordered_map<SessionId, JournalSession> sessions;
  bool operator==(const JournalState&) const = default;
};

struct JournalOptions {
  std::string dir;  // created if missing; unused in kMemory
  Durability durability = Durability::kProcess;
  JournalRole role = JournalRole::kClient;
  std::string owner_id;  // session id or server id; must match on reopen
  // Source of the journal id for a new journal. Injected so tests are
  // deterministic; the default draws from the Env's Random64.
  std::function<JournalId()> new_journal_id;
  // A new segment file is started when the current one passes this size.
  std::size_t segment_bytes = 64 * 1024 * 1024;
  // NeedsCompaction() turns true when the bytes on disk exceed both this and
  // 4 x the size of the live state.
  std::size_t compact_min_bytes = 16 * 1024 * 1024;
  // Every file, directory, lock and random number goes through it; not
  // owned, must outlive the Journal. nullptr: JournalEnv::Default(), the
  // POSIX one.
  JournalEnv* env = nullptr;
};

// What replay found on open.
struct ReplayReport {
  std::size_t segments = 0;
  std::size_t records = 0;
  // A torn tail of the last segment (JOURNAL.md "Torn tails") was cut off:
  // how many bytes, from which segment file, at which offset, and why. Open
  // never cuts anything else; the libraries log every cut at open.
  std::size_t truncated_bytes = 0;
  std::string truncated_segment;  // file name, empty when nothing was cut
  std::size_t truncated_offset = 0;
  std::string truncated_reason;
  bool created = false;  // no journal existed; a new one was made
};

// A read-only look at a journal directory (Journal::Inspect).
struct JournalSegmentInfo {
  std::string name;
  std::uint64_t bytes = 0;
  bool snapshot = false;    // starts with a snapshot-begin record
  bool superseded = false;  // older than the newest snapshot; open deletes it
};

enum class JournalIntegrity : std::uint8_t {
  kOk = 0,
  kTornTail = 1,  // open would cut `torn_bytes` off the last segment
  kCorrupt = 2,   // open fails with kCorrupt; see `detail`
};

struct JournalInspection {
  bool has_open_record = false;  // false: nothing was ever committed
  JournalRole role = JournalRole::kClient;
  std::string owner;
  Incarnation incarnation = 0;  // the largest recorded
  JournalId journal_id = 0;
  // The state replayed up to the end or to the first damage.
  JournalState state;
  std::size_t records = 0;
  std::vector<JournalSegmentInfo> segments;
  // Other files of the journal: unfinished *.tmp segments, *.damaged files
  // kept by Salvage.
  std::vector<std::string> other_files;
  bool locked = false;  // a live process holds the journal's LOCK
  JournalIntegrity integrity = JournalIntegrity::kOk;
  std::size_t torn_bytes = 0;
  // For kTornTail and kCorrupt: what was found (file, offset, reason).
  std::string detail;
  // For kCorrupt at a known place: the segment and offset of the damage.
  std::string damaged_segment;
  std::uint64_t damaged_offset = 0;
};

// Next-seq gap of Journal::Salvage: every session's next_seq is raised by
// this much, so no seq that may have been used after the damage is issued
// again.
inline constexpr Seq kSalvageSeqGap = Seq{1} << 32;

struct SalvageReport {
  JournalRole role = JournalRole::kClient;
  std::string owner;
  JournalId old_journal_id = 0;
  JournalId new_journal_id = 0;
  Incarnation incarnation = 0;  // recorded in the new snapshot
  std::size_t sessions = 0;
  std::size_t ops = 0;   // live operations kept
  std::string damage;    // where the damage was (file and offset)
  std::string snapshot;  // file name of the new snapshot segment
  std::vector<std::string> kept_aside;  // *.damaged files written
  std::vector<std::string> removed;     // superseded segment names
};

class Journal {
 public:
  // Opens (or creates) the journal, takes the directory lock, replays every
  // segment into the live state, cuts a torn tail of the last segment (only
  // what a crash leaves: zero fill, or a record running past the end with
  // no intact record after it; reported in report()), and records the new
  // incarnation (durably, per the level) before returning. Errors:
  // kJournalLocked (another process holds it), kIoError (permissions,
  // disk), kJournalVersion (written by a newer format), kCorrupt (any other
  // damage, named by file and offset, with nothing changed on disk; a
  // segment file over the size limit; wrong owner or role),
  // kInvalidArgument (bad options).
  static Result<std::unique_ptr<Journal>> Open(JournalOptions options);

  // Reads the journal in `dir` without changing anything: no file is
  // created, removed, truncated or written, no lock is taken (LOCK is only
  // probed). The role and owner are the ones its open records name. A
  // damaged journal is reported in the result, not as an error; errors are
  // kNotFound (no such directory), kIoError, kJournalVersion, and kCorrupt
  // for a journal that cannot be read at all (wrong owner records, two
  // journal ids). `env` as in JournalOptions.
  static Result<JournalInspection> Inspect(const std::string& dir,
                                           JournalEnv* env = nullptr);

  // The operator's way out of a corrupt journal (JOURNAL.md "Salvage").
  // Takes the lock, keeps the intact prefix before the damage, keeps every
  // segment from the damaged one on aside as `NAME.damaged` (never
  // deleted), and writes a snapshot of the prefix under a NEW journal id
  // with every session's next_seq raised by kSalvageSeqGap. Peers see the
  // new id and treat this party's memory as lost. Refuses (kInvalidArgument)
  // a journal that is not corrupt or whose damage has no known place, and a
  // journal without an intact open record (its owner is unknown).
  // `new_journal_id` overrides the random id (tests); `env` as in
  // JournalOptions.
  static Result<SalvageReport> Salvage(
      const std::string& dir,
      std::function<JournalId()> new_journal_id = nullptr,
      JournalEnv* env = nullptr);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Records that (session, seq) reached `op.state` with op's data, and
  // applies it to the live state. `op.incarnation` is set to incarnation().
  // An empty payload keeps the payload already recorded, except in the
  // response states (client COMPLETED, server EXECUTED), whose payload always
  // replaces the stored request. kInvalidArgument for
  // an invalid id, seq 0, or seq below the session's released_below.
  Status AppendOp(const SessionId& session, Seq seq, JournalOp op);

  // Releases (server) or forgets (client): drops every op of `session` below
  // `below` and raises released_below to it, then for each seq in `seqs`
  // drops its payload and (server) leaves a kReleased tombstone or (client)
  // removes the entry.
  Status AppendRelease(const SessionId& session, Seq below,
                       const std::vector<Seq>& seqs = {});

  // Hands every buffered record to the OS; in kSync also fdatasyncs. A no-op
  // in kMemory and when nothing is buffered. After an error the journal is
  // unusable (every later call returns kIoError).
  Status Commit();

  // Commit in two steps, for a journal that several threads share under
  // their own lock: DetachPending (under the lock) moves the buffered
  // records into `out`, so that appends can go on while WriteDetached
  // (without the lock) writes and syncs them exactly as Commit would. At
  // most one WriteDetached may run at a time, in the order of the detaches,
  // and no Commit or Compact while it runs.
  void DetachPending(std::string& out);
  Status WriteDetached(std::string& records);

  // Rewrites the live state into a fresh segment and deletes the older ones.
  // Crash-safe: a crash at any point leaves either the old or the new set.
  Status Compact();
  bool NeedsCompaction() const;

  const JournalState& state() const { return state_; }
  Incarnation incarnation() const { return incarnation_; }
  JournalId journal_id() const { return journal_id_; }
  const ReplayReport& report() const { return report_; }
  Durability durability() const { return options_.durability; }
  // Bytes in all segments, committed or buffered.
  std::size_t disk_bytes() const;
  // Records buffered and not yet committed.
  std::size_t pending_records() const { return pending_records_; }

 private:
  explicit Journal(JournalOptions options);
  // Replays `dir` read-only into a journal object that is never written.
  static Status ReadOnlyReplay(const std::string& dir, Journal* j,
                               JournalInspection* out);
  class Files;  // segment files, lock, write buffer (src/journal_files.h)

  JournalOptions options_;
  JournalState state_;
  Incarnation incarnation_ = 0;
  JournalId journal_id_ = 0;
  ReplayReport report_;
  std::size_t pending_records_ = 0;
  // Approximate encoded size of state_, kept by the code that changes it;
  // NeedsCompaction() compares it with disk_bytes().
  std::size_t live_bytes_ = 0;
  std::unique_ptr<Files> files_;
};

}  // namespace rejoin
