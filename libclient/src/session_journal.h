// SessionJournal: one Client's view of its journal, private or shared with
// other sessions of the process (SharedJournal). Appends, commits and
// lookups of the session's live records go through it; the lock of the
// underlying journal is taken here and nowhere else in the client.
//
// Threads: each Client's I/O thread uses its own SessionJournal. Every change
// of the underlying Journal happens under the lock; a session's records are
// changed only by its own I/O thread, so that thread may read them (the
// pointer session() returns) without the lock while others append theirs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "rejoin/client/shared_journal.h"
#include "rejoin/proto/journal.h"
#include "session_records.h"

namespace rejoin {

struct SharedJournal::Impl {
  std::mutex mutex;
  std::unique_ptr<Journal> journal;
  // One session at a time writes what was appended before it started
  // (Journal::DetachPending/WriteDetached), without the lock, so the others
  // go on appending; whoever waited for it finds its records durable, or
  // writes everything appended meanwhile in one go. (Overlapping syncs of
  // one file do not merge: appends to a page under writeback wait for it.)
  bool writing = false;
  std::condition_variable written;
  std::string detached;  // the batch being written; the writer's alone
  Status failed;         // a failed write: the journal is unusable
  std::uint64_t appended = 0;
  std::uint64_t durable = 0;
  std::uint64_t commits = 0;
  std::uint64_t committed_records = 0;
  // Sessions with an open Client: one per session id.
  std::set<SessionId> attached;
};

namespace client_internal {

class SessionJournal final : public SessionRecords {
 public:
  // Attaches `session` to `shared`; kJournalLocked when another Client of
  // this process already uses that session in it.
  static Result<std::unique_ptr<SessionJournal>> Attach(
      std::shared_ptr<SharedJournal> shared, const SessionId& session);

  ~SessionJournal();
  SessionJournal(const SessionJournal&) = delete;
  SessionJournal& operator=(const SessionJournal&) = delete;

  Status AppendOp(Seq seq, JournalOp op) override;
  Status AppendRelease(Seq below, const std::vector<Seq>& seqs) override;
  // Whether this session appended records no commit has covered yet, as far
  // as this session knows (Commit finds out the rest).
  bool dirty() const { return last_appended_ > known_durable_; }
  // Makes every record this session appended durable: by a commit of its
  // own, or by finding that another session's commit already carried them
  // (waiting for a commit in progress first).
  Status Commit();
  // Compacts the whole journal when it has grown well past its live state
  // and no commit is writing (then it is left to a later call).
  Status CompactIfNeeded();

  // The session's live records; nullptr when it has none yet.
  const JournalSession* session() const override;
  Incarnation incarnation() const { return journal().incarnation(); }
  JournalId journal_id() const { return journal().journal_id(); }
  bool created() const { return journal().report().created; }
  Durability durability() const { return journal().durability(); }

 private:
  SessionJournal(std::shared_ptr<SharedJournal> shared, SessionId session);
  SharedJournal::Impl& impl() const { return *shared_->impl_; }
  const Journal& journal() const { return *impl().journal; }

  std::shared_ptr<SharedJournal> shared_;
  const SessionId session_;
  std::uint64_t last_appended_ = 0;
  std::uint64_t known_durable_ = 0;
  // Once the session exists it is never removed, so the lookup is kept.
  mutable const JournalSession* session_records_ = nullptr;
};

}  // namespace client_internal
}  // namespace rejoin
