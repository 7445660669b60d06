// The checker's invariants (docs/SIMULATION.md, "Invariants").
#include "sim_checker.h"

#include <algorithm>
#include <utility>

namespace rejoin::sim {

Checker::Checker(int clients, int servers)
    : calls_(static_cast<std::size_t>(clients)),
      gone_(static_cast<std::size_t>(clients), false),
      servers_(servers) {}

void Checker::BrokerStarted(std::int64_t now_us, std::int64_t grace_us) {
  welcomed_.clear();
  brokers_.push_back(
      {now_us, now_us + grace_us,
       std::vector<std::int64_t>(static_cast<std::size_t>(servers_), -1)});
}

void Checker::GraceEnded(std::int64_t now_us) {
  // Later than G: the broker held resends for a server that had not
  // reported, and a copy taken before now was taken inside its grace. Never
  // earlier: the protocol's assumption is that servers return within G,
  // and a broker that stops waiting sooner is at fault (a trusted roster
  // ends it early only once every server reported, when nothing is missed).
  BrokerLife& b = brokers_.back();
  b.grace_end_us = std::max(b.grace_end_us, now_us);
}

void Checker::ServerReported(int server, std::int64_t now_us) {
  std::int64_t& at =
      brokers_.back().reported_at[static_cast<std::size_t>(server)];
  if (at < 0) at = now_us;
}

Checker::Call* Checker::Find(int client, Seq seq) {
  auto& calls = calls_[static_cast<std::size_t>(client)];
  auto it = calls.find(seq);
  return it == calls.end() ? nullptr : &it->second;
}

void Checker::Fail(const std::string& invariant, int client, Seq seq,
                   std::string detail) {
  // One report per invariant and operation is enough to read.
  for (const Violation& v : violations_) {
    if (v.invariant == invariant &&
        v.client == static_cast<std::uint32_t>(client + 1) && v.seq == seq) {
      return;
    }
  }
  violations_.push_back({invariant, static_cast<std::uint32_t>(client + 1), seq,
                         std::move(detail)});
}

void Checker::Attempted(int client, Seq seq, const std::string& service,
                        const std::string& payload) {
  auto& calls = calls_[static_cast<std::size_t>(client)];
  if (auto it = calls.find(seq); it != calls.end()) {
    // A call lost with its process before it was recorded leaves its seq
    // free; one recorded or run must never be issued again.
    if (it->second.accepted || !it->second.execs.empty()) {
      Fail("seq_reused", client, seq, "the client issued one seq twice");
      return;
    }
    calls.erase(it);
  }
  Call& c = calls[seq];
  c.service = service;
  c.payload = payload;
}

void Checker::Accepted(int client, Seq seq) {
  Call* c = Find(client, seq);
  if (c == nullptr || c->accepted) return;
  c->accepted = true;
  if (!c->answered) ++outstanding_;
}

void Checker::Executed(int server, int client, Seq seq, bool idempotent,
                       ErrorCode status, const std::string& result,
                       std::int64_t now_us) {
  ++executions_;
  Call* c = Find(client, seq);
  if (c == nullptr) {
    Fail("execution_of_unknown_call", client, seq,
         "server " + std::to_string(server) + " ran a call never made");
    return;
  }
  if (!idempotent) {
    // When this server took the call on.
    auto mine = c->received_at.find(server);
    const std::int64_t taken =
        mine == c->received_at.end() ? now_us : mine->second;
    for (const Exec& e : c->execs) {
      if (Untraceable(*c, e)) continue;
      const std::int64_t since = TakenAt(*c, e);
      // Whichever ran first, the copy received first may be one a broker
      // restart lost track of: its server had not reported within the
      // grace period (down, cut off, or its HELLO lost) when the other copy
      // was taken. The protocol assumes servers return within it.
      const bool mine_first = taken < since;
      if (GraceMissed(mine_first ? server : e.server,
                      mine_first ? taken : since, mine_first ? since : taken)) {
        ++grace_misses_;
        continue;
      }
      Fail("non_idempotent_executed_twice", client, seq,
           "service " + c->service + " ran at server " +
               std::to_string(e.server) + " and again at server " +
               std::to_string(server));
      break;
    }
  }
  c->execs.push_back({server, now_us, status, result, false});
}

bool Checker::Untraceable(const Call& c, const Exec& e) {
  if (e.forgotten) return true;
  if (!Superseded(c, e)) return false;
  ++grace_misses_;
  return true;
}

std::int64_t Checker::TakenAt(const Call& c, const Exec& e) {
  auto took = c.received_at.find(e.server);
  return took == c.received_at.end() ? e.at_us : took->second;
}

bool Checker::Superseded(const Call& c, const Exec& e) {
  for (const Exec& later : c.execs) {
    if (later.forgotten && later.at_us > e.at_us) return true;
  }
  return false;
}

bool Checker::GraceMissed(int early_server, std::int64_t early_taken,
                          std::int64_t late_taken) const {
  // The broker serving when the later copy was taken.
  const BrokerLife* broker = nullptr;
  for (const BrokerLife& b : brokers_) {
    if (b.start_us <= late_taken) broker = &b;
  }
  if (broker == nullptr) return false;
  const std::int64_t grace_end = broker->grace_end_us;
  const std::int64_t reported =
      broker->reported_at[static_cast<std::size_t>(early_server)];
  return early_taken < broker->start_us && late_taken >= grace_end &&
         (reported < 0 || reported > grace_end);
}

void Checker::Received(int server, int client, Seq seq, std::int64_t now_us) {
  // The first durable one: a receipt lost in a crash before its commit
  // never reaches the checker.
  if (Call* c = Find(client, seq)) c->received_at.emplace(server, now_us);
}

void Checker::Delivered(int client, Seq seq, ErrorCode status,
                        const std::string& payload, std::int64_t now_us) {
  Call* c = Find(client, seq);
  if (c == nullptr) {
    Fail("answer_to_unknown_call", client, seq,
         "the application got an answer for a seq it never used");
    return;
  }
  if (c->answered) {
    Fail("answered_twice", client, seq,
         "second answer with status " + std::string(ErrorCodeName(status)));
    return;
  }
  c->answered = true;
  ++answered_;
  if (c->accepted && !c->exempt) --outstanding_;
  switch (status) {
    case ErrorCode::kOk:
    case ErrorCode::kHandlerFailed: {
      bool found = false;
      for (const Exec& e : c->execs) {
        if (e.status == status && e.result == payload) found = true;
      }
      if (!found) {
        Fail("answer_not_from_handler", client, seq,
             "status " + std::string(ErrorCodeName(status)) + " payload '" +
                 payload + "' matches no execution of '" + c->payload + "' (" +
                 std::to_string(c->execs.size()) + " executions)");
      }
      return;
    }
    case ErrorCode::kInDoubt:
      ++in_doubt_;
      return;
    case ErrorCode::kUnavailable:
    case ErrorCode::kUnknownService:
      // Both say the call did not run (PROTOCOL.md §9): no server may have
      // run it, unless the answering broker could not know, its server
      // having been away across that broker's start for longer than the
      // grace period (the protocol's timing assumption), or its journal
      // having been wiped since.
      ++in_doubt_;
      for (const Exec& e : c->execs) {
        if (Untraceable(*c, e)) continue;
        if (GraceMissed(e.server, TakenAt(*c, e), now_us)) {
          ++grace_misses_;
          continue;
        }
        Fail("answered_not_run_but_ran", client, seq,
             "answered " + std::string(ErrorCodeName(status)) +
                 " after server " + std::to_string(e.server) + " ran it");
        return;
      }
      return;
    default:
      Fail("answer_status_not_allowed", client, seq,
           "status " + std::string(ErrorCodeName(status)));
      return;
  }
}

void Checker::ClientJournalLost(int client) {
  for (auto& [seq, c] : calls_[static_cast<std::size_t>(client)]) {
    if (c.exempt || c.answered) continue;
    c.exempt = true;
    if (c.accepted) --outstanding_;
  }
}

void Checker::ServerJournalLost(int server) {
  for (auto& calls : calls_) {
    for (auto& [seq, c] : calls) {
      for (Exec& e : c.execs) {
        if (e.server == server) e.forgotten = true;
      }
      c.received_at.erase(server);
    }
  }
}

void Checker::ClientGone(int client) {
  gone_[static_cast<std::size_t>(client)] = true;
  ClientJournalLost(client);
}

void Checker::HelloSent(const std::string& route, const std::string& id,
                        Incarnation incarnation, JournalId journal) {
  auto& v = hellos_[route];
  for (HelloSeen& h : v) {
    if (h.id == id) {
      h.incarnation = incarnation;
      h.journal = journal;
      return;
    }
  }
  v.push_back({id, incarnation, journal});
}

void Checker::WelcomeSent(const std::string& route, const std::string& id) {
  auto it = hellos_.find(route);
  if (it == hellos_.end()) return;
  for (const HelloSeen& h : it->second) {
    if (h.id != id) continue;
    Incarnation& top = welcomed_[id][h.journal];
    if (h.incarnation < top) {
      Fail("old_incarnation_welcomed", -1, 0,
           id + " incarnation " + std::to_string(h.incarnation) +
               " welcomed after incarnation " + std::to_string(top));
    }
    if (h.incarnation > top) top = h.incarnation;
    return;
  }
}

void Checker::CheckAllAnswered() {
  for (std::size_t i = 0; i < calls_.size(); ++i) {
    if (gone_[i]) continue;
    for (const auto& [seq, c] : calls_[i]) {
      if (!c.accepted && !c.exempt && !c.execs.empty() && c.service != "idem") {
        bool remembered = false;
        for (const Exec& e : c.execs) remembered |= !e.forgotten;
        if (remembered) {
          Fail("side_effect_of_unrecorded_call", static_cast<int>(i), seq,
               "service " + c.service +
                   " ran a call its client never recorded (the client "
                   "believes it never happened)");
        }
      }
      if (!c.accepted || c.answered || c.exempt) continue;
      Fail("accepted_call_not_answered", static_cast<int>(i), seq,
           "service " + c.service + ", " + std::to_string(c.execs.size()) +
               " executions, faults over and the settle time passed");
    }
  }
}

void Checker::MemoryOver(const std::string& what, std::uint64_t value,
                         std::uint64_t bound) {
  Fail("memory_not_idle", -1, 0,
       what + " = " + std::to_string(value) + ", idle bound " +
           std::to_string(bound));
}

}  // namespace rejoin::sim
