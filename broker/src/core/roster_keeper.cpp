// The roster (PROTOCOL.md §6.5) as the core keeps it; the file itself is
// reached through RosterStore.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"

namespace rejoin::broker_internal {

// The roster ends the grace period early; it never decides an operation.
// Its one invariant: every server that a broker keeping the file may have
// dispatched to, and that may still hold an operation its client waits for,
// is listed, or the file says `partial`. A server is listed before its first
// WELCOME; the removals below each argue why the server can no longer hold
// such an operation, or what is given up compared with the time-based grace
// period.

Status BrokerCore::KeepRoster(RosterStore& store, Result<RosterContents> read) {
  roster_store_ = &store;
  const std::string& path = store.name();
  if (read.ok()) {
    roster_ = std::move(*read);
    roster_trusted_ = roster_.complete;
    spdlog::info("rejoin-broker: roster {}: {} servers listed{}", path,
                 roster_.servers.size(),
                 roster_.complete ? "" : ", partial: full grace period");
  } else if (read.status().code() == ErrorCode::kNotFound) {
    spdlog::info("rejoin-broker: roster {} not found: full grace period", path);
  } else {
    spdlog::warn("rejoin-broker: roster unusable ({}): full grace period",
                 read.status().ToString());
  }
  roster_epochs_.insert(roster_.epochs.begin(), roster_.epochs.end());
  roster_awaiting_ = roster_.servers;
  roster_unreturned_ = roster_.servers;
  roster_listed_ = roster_.servers.size();
  // This broker's epoch is recorded before any endpoint is welcomed, so the
  // next broker recognises endpoints that come from this one.
  roster_.epochs.push_back(epoch_);
  if (roster_.epochs.size() > kMaxRosterEpochs) {
    roster_.epochs.erase(roster_.epochs.begin(),
                         roster_.epochs.end() - kMaxRosterEpochs);
  }
  roster_on_ = true;
  counters_.roster_servers.store(roster_.servers.size());
  return store.Write(roster_);
}

bool BrokerCore::SaveRoster() {
  if (!roster_on_) return true;
  Status s = roster_store_->Write(roster_);
  if (s.ok()) {
    roster_unsafe_ = false;
    counters_.roster_servers.store(roster_.servers.size(),
                                   std::memory_order_relaxed);
    return true;
  }
  // A roster that cannot be kept must not mislead the next broker: without
  // a file it runs the full grace period.
  if (roster_store_->Remove()) {
    spdlog::error(
        "rejoin-broker: {}; roster removed and no longer kept: the next "
        "start runs the full grace period",
        s.ToString());
    roster_on_ = false;
    roster_unsafe_ = false;
    counters_.roster_servers.store(0, std::memory_order_relaxed);
    return true;
  }
  LogOnce("roster-write",
          "cannot write or remove the roster (" + s.ToString() +
              "): HELLOs that need it changed, and all while a change is "
              "pending, are refused until it can be");
  return false;
}

bool BrokerCore::VouchedByRoster(const Hello& hello, Time now) {
  if (!roster_on_) return true;
  // An endpoint last welcomed by a broker that did not keep this file (one
  // started without --roster, or with another file) may have had work
  // dispatched to servers the file never heard of. During the grace period
  // that makes the roster partial: this broker runs the full grace period,
  // and so does the next one if this one dies first. After the grace period
  // it changes nothing: this broker already treats unreported servers as
  // gone. (Endpoints that restarted since say last_epoch 0 and cannot be
  // checked; keeping one roster for all brokers is the operator's part.)
  const bool stranger = hello.last_epoch != 0 && hello.last_epoch != epoch_ &&
                        roster_epochs_.count(hello.last_epoch) == 0;
  if (stranger && roster_.complete && InGrace(now)) {
    spdlog::warn(
        "rejoin-broker: '{}' was last welcomed by broker epoch {:016x}, "
        "which did not keep roster {}: full grace period",
        Printable(hello.id), hello.last_epoch, roster_store_->name());
    roster_trusted_ = false;
    roster_.complete = false;
    roster_unsafe_ = true;
  }
  return !roster_unsafe_ || SaveRoster();
}

bool BrokerCore::ListInRoster(const std::string& server_id) {
  if (!roster_on_) return true;
  if (roster_.servers.insert(server_id).second) roster_unsafe_ = true;
  return !roster_unsafe_ || SaveRoster();
}

void BrokerCore::ServerReported(const std::string& server_id, Time now) {
  auto it = servers_.find(server_id);
  if (it != servers_.end()) it->second.reported = true;
  roster_awaiting_.erase(server_id);
  // Every listed server has returned and told what it holds: an operation
  // nobody reported is held by no server a broker dispatched to.
  if (roster_trusted_ && roster_awaiting_.empty() && !grace_over_handled_ &&
      InGrace(now)) {
    EndGrace(now);
  }
}

void BrokerCore::DropFromRoster(const std::vector<std::string>& ids,
                                const char* why) {
  std::string names;
  for (const std::string& id : ids) {
    roster_.servers.erase(id);
    names += " " + Printable(id);
  }
  spdlog::info("rejoin-broker: dropped from the roster ({}):{}", why, names);
  // A failed write leaves the servers listed: more waiting, never less.
  SaveRoster();
}

void BrokerCore::CheckRoster(Time now) {
  if (!roster_on_ || now < next_roster_check_) return;
  // A scan of every tracked operation, while a server is leaving: often
  // enough to notice, rarely enough to cost nothing.
  next_roster_check_ =
      now + std::clamp<Clock::duration>(options_.lease / 2,
                                        std::chrono::milliseconds(20),
                                        std::chrono::seconds(1));

  // Listed servers that did not return within the grace period plus a
  // lease. This broker already decided their clients' pending operations
  // without them when its grace period ended, as it would without a roster;
  // keeping them would make every later restart wait the full grace period
  // for servers that are not coming back. What is given up: a client absent
  // for this broker's whole life whose operation such a server holds, if
  // both come back within a grace period of some later restart; without a
  // roster the same server would be missed if it came back any later.
  if (!roster_swept_ && now >= roster_sweep_at_) {
    roster_swept_ = true;
    std::vector<std::string> gone;
    for (const std::string& id : roster_unreturned_) {
      if (roster_.servers.count(id) != 0) gone.push_back(id);
    }
    roster_unreturned_.clear();
    if (!gone.empty()) {
      DropFromRoster(gone,
                     "did not return within the grace period and a lease");
    }
  }

  // Servers that left: said GOODBYE (it had finished every handler and sent
  // every response first) or outlived their lease (their unanswered work
  // was moved to another server or answered in_doubt). They are
  // dropped only once they had reported everything to this broker and no
  // operation this broker tracks names them any more: each operation they
  // ran, held or were answered in doubt for has been acknowledged by its
  // client (released), and those moved elsewhere are idempotent. What such
  // a server may still keep in its journal is then COMPLETED at its client,
  // which never sends it again, so no later broker needs to wait for it. If
  // it comes back, it is listed again before its WELCOME.
  std::set<std::string> leaving;
  for (const auto& [id, srv] : servers_) {
    if (!srv.holder.alive && srv.reported &&
        (srv.said_goodbye || srv.lease_expired) &&
        roster_.servers.count(id) != 0) {
      leaving.insert(id);
    }
  }
  for (auto it = leaving.begin(); it != leaving.end();) {
    it = StillNamed(*it) ? leaving.erase(it) : std::next(it);
  }
  if (!leaving.empty()) {
    DropFromRoster({leaving.begin(), leaving.end()},
                   "left and holds nothing a client waits for");
  }
}

}  // namespace rejoin::broker_internal
