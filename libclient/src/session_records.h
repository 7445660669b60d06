// SessionRecords: what the session's operation logic (session_core.h) needs
// of the journal: its own records, and appending to them. The library's is
// SessionJournal (a session's view of a private or shared journal); the
// simulation's is a journal on its fault-injecting disk.
#pragma once

#include <vector>

#include "rejoin/proto/journal.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin::client_internal {

// The session's records: its part of the journal (session_journal.h).
class SessionRecords {
 public:
  virtual ~SessionRecords() = default;
  virtual Status AppendOp(Seq seq, JournalOp op) = 0;
  virtual Status AppendRelease(Seq below, const std::vector<Seq>& seqs) = 0;
  // The session's live records; nullptr when it has none yet.
  virtual const JournalSession* session() const = 0;
};

}  // namespace rejoin::client_internal
