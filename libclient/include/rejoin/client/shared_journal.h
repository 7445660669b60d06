// rejoin::SharedJournal: one journal for several client sessions of a
// process, so that one commit (one fdatasync with Durability::kSync) makes
// the records of all of them durable: group commit across sessions.
//
// Each session still has its own Client, I/O thread and connection; they
// share only the journal. A Client opened with ClientOptions::shared_journal
// keeps its operations in it under its session id, and a later process that
// opens the same directory finds every session's operations there.
#pragma once

#include <memory>
#include <string>

#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

namespace client_internal {
class SessionJournal;
}

class SharedJournal {
 public:
  // Opens (or creates) the journal in `dir` (locked while open) with the
  // given durability. `name` identifies the journal itself, like a session
  // id for a private one, and must be the same when it is opened again.
  // Errors as Client::Open: kInvalidArgument, kJournalLocked, kIoError,
  // kCorrupt, kJournalVersion.
  static Result<std::shared_ptr<SharedJournal>> Open(
      const std::string& dir, Durability durability,
      const std::string& name = "shared");

  ~SharedJournal();
  SharedJournal(const SharedJournal&) = delete;
  SharedJournal& operator=(const SharedJournal&) = delete;

  // Commits that made records durable, and records they carried: their
  // ratio is how much the sessions gained from sharing.
  std::uint64_t commits() const;
  std::uint64_t committed_records() const;

  struct Impl;

 private:
  explicit SharedJournal(std::unique_ptr<Impl> impl);
  friend class client_internal::SessionJournal;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rejoin
