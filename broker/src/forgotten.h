// Sessions whose tracking the broker dropped while servers may still hold
// their operations (FLOWS.md §10): a session only servers reported, expired
// after BrokerOptions::reported_session_expiry, and a session a server's
// STATE_EXCHANGE named beyond its quota. A REQUEST the broker does not track
// for such a session, at or below the highest seq a server named, may be an
// operation a server already ran: it must not be dispatched to any other
// server of a non-idempotent service. This table keeps, per session, which
// server named it (and under which journal) and up to which seq, so that
// such a resend goes back to that server, or is answered in_doubt when the
// broker cannot say which server holds it.
//
// Bounded: at most `capacity` sessions, the oldest forgotten first; every
// entry dropped is counted. Keys are 64-bit hashes of the session id: a
// collision can only make a resend go the cautious way (back to a server
// that holds nothing of it, or in_doubt), never to a second execution.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "rejoin/proto/types.h"

namespace rejoin::broker_internal {

class ForgottenSessions {
 public:
  struct Entry {
    Seq highest = 0;     // the highest seq any server named for it
    std::string server;  // the one server that named it, if only one
    JournalId journal = 0;
    bool ambiguous = false;  // more than one server (or journal) named it
  };

  explicit ForgottenSessions(std::size_t capacity) : capacity_(capacity) {}

  // `server` (with `journal`) held operations of `session` up to `highest`.
  void Remember(const SessionId& session, const std::string& server,
                JournalId journal, Seq highest);
  // Null when nothing is remembered of the session.
  const Entry* Find(const SessionId& session) const;

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  // Entries dropped to stay within capacity.
  std::uint64_t dropped() const { return dropped_; }

 private:
  static std::uint64_t Key(const SessionId& session);

  std::size_t capacity_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::deque<std::uint64_t> order_;  // oldest first
  std::uint64_t dropped_ = 0;
};

}  // namespace rejoin::broker_internal
