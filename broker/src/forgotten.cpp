#include "forgotten.h"

#include <functional>

namespace rejoin::broker_internal {

std::uint64_t ForgottenSessions::Key(const SessionId& session) {
  return std::hash<SessionId>{}(session);
}

void ForgottenSessions::Remember(const SessionId& session,
                                 const std::string& server, JournalId journal,
                                 Seq highest) {
  if (capacity_ == 0) {
    ++dropped_;
    return;
  }
  const std::uint64_t key = Key(session);
  auto [it, fresh] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (fresh) {
    e.server = server;
    e.journal = journal;
    order_.push_back(key);
  } else if (e.server != server || e.journal != journal) {
    e.ambiguous = true;
  }
  if (highest > e.highest) e.highest = highest;
  while (entries_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
    ++dropped_;
  }
}

const ForgottenSessions::Entry* ForgottenSessions::Find(
    const SessionId& session) const {
  auto it = entries_.find(Key(session));
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace rejoin::broker_internal
