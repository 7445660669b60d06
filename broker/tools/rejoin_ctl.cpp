// rejoin-ctl: the operator's tool for journals found on disk and for a
// running broker.
//   rejoin-ctl journal inspect DIR [--json]  reads a journal without changing
//     a byte and prints what it holds and whether it is intact; exit status
//     0 when it opens (intact or with a torn tail to cut), 1 when it is
//     corrupt or cannot be read, 2 for bad usage.
//   rejoin-ctl journal salvage DIR --yes  moves the damage aside and restarts
//     the journal under a new journal id (JOURNAL.md "Salvage"); exit status
//     0 when done, 1 when refused or failed, 2 without --yes.
//   rejoin-ctl broker status ENDPOINT [--json]  asks a running broker's
//     admin endpoint (rejoin-broker --admin) for its sessions, servers,
//     services, grace state and counters; exit status 1 when no broker
//     answered within --timeout-ms.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <zmq.hpp>

#include "rejoin/proto/journal.h"

namespace {

using rejoin::JournalInspection;
using rejoin::JournalIntegrity;
using rejoin::JournalRole;

std::string Hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string RoleName(JournalRole role) {
  return role == JournalRole::kClient ? "client" : "server";
}

std::string StateName(JournalRole role, std::uint8_t state) {
  return std::string(
      role == JournalRole::kClient
          ? rejoin::ClientOpStateName(static_cast<rejoin::ClientOpState>(state))
          : rejoin::ServerOpStateName(
                static_cast<rejoin::ServerOpState>(state)));
}

std::string IntegrityName(JournalIntegrity i) {
  switch (i) {
    case JournalIntegrity::kOk:
      return "ok";
    case JournalIntegrity::kTornTail:
      return "torn-tail";
    case JournalIntegrity::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

// A JSON string literal; bytes that are not UTF-8 become U+FFFD.
std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false,
                                nlohmann::json::error_handler_t::replace);
}

// Operations of a session counted by state name, in state order.
std::map<std::uint8_t, std::size_t> CountByState(
    const rejoin::JournalSession& s) {
  std::map<std::uint8_t, std::size_t> counts;
  for (const auto& [seq, op] : s.ops) ++counts[op.state];
  return counts;
}

void PrintText(const std::string& dir, const JournalInspection& j) {
  std::cout << "journal      " << dir << "\n";
  if (j.has_open_record) {
    std::cout << "role         " << RoleName(j.role) << "\n"
              << "owner        " << j.owner << "\n"
              << "incarnation  " << j.incarnation << "\n"
              << "journal id   " << Hex(j.journal_id) << "\n";
  } else {
    std::cout << "role         (no open record: nothing was ever committed)\n";
  }
  std::cout << "in use       " << (j.locked ? "yes (LOCK held)" : "no") << "\n";
  std::cout << "integrity    " << IntegrityName(j.integrity);
  if (j.integrity == JournalIntegrity::kTornTail) {
    std::cout << ": torn tail of " << j.torn_bytes
              << " bytes, cut at next open (" << j.detail << ")";
  } else if (j.integrity == JournalIntegrity::kCorrupt) {
    if (!j.damaged_segment.empty()) {
      std::cout << " at " << j.damaged_segment << " offset "
                << j.damaged_offset;
    }
    std::cout << "\n  " << j.detail;
  }
  std::cout << "\nrecords      " << j.records
            << (j.integrity == JournalIntegrity::kCorrupt ? " (before damage)"
                                                          : "")
            << "\nsegments\n";
  for (const rejoin::JournalSegmentInfo& s : j.segments) {
    std::cout << "  " << s.name << "  " << s.bytes << " bytes"
              << (s.snapshot ? "  snapshot" : "")
              << (s.superseded ? "  superseded" : "") << "\n";
  }
  if (!j.other_files.empty()) {
    std::cout << "other files\n";
    for (const std::string& f : j.other_files) std::cout << "  " << f << "\n";
  }
  std::cout << "sessions     " << j.state.sessions.size() << "\n";
  std::map<std::string, const rejoin::JournalSession*> sorted;
  for (const auto& [id, s] : j.state.sessions) sorted[id] = &s;
  for (const auto& [id, s] : sorted) {
    std::cout << "  " << id << "  next_seq " << s->next_seq
              << "  released_below " << s->released_below << "  ops";
    if (s->ops.empty()) std::cout << " none";
    for (const auto& [state, n] : CountByState(*s)) {
      std::cout << " " << StateName(j.role, state) << "=" << n;
    }
    std::cout << "\n";
  }
}

void PrintJson(const std::string& dir, const JournalInspection& j) {
  std::ostringstream o;
  o << "{\"dir\":" << JsonString(dir)
    << ",\"has_open_record\":" << (j.has_open_record ? "true" : "false");
  if (j.has_open_record) {
    o << ",\"role\":" << JsonString(RoleName(j.role))
      << ",\"owner\":" << JsonString(j.owner)
      << ",\"incarnation\":" << j.incarnation
      << ",\"journal_id\":" << JsonString(Hex(j.journal_id));
  }
  o << ",\"locked\":" << (j.locked ? "true" : "false")
    << ",\"integrity\":" << JsonString(IntegrityName(j.integrity))
    << ",\"torn_bytes\":" << j.torn_bytes
    << ",\"detail\":" << JsonString(j.detail);
  if (!j.damaged_segment.empty()) {
    o << ",\"damaged_segment\":" << JsonString(j.damaged_segment)
      << ",\"damaged_offset\":" << j.damaged_offset;
  }
  o << ",\"records\":" << j.records << ",\"segments\":[";
  for (std::size_t i = 0; i < j.segments.size(); ++i) {
    const rejoin::JournalSegmentInfo& s = j.segments[i];
    o << (i ? "," : "") << "{\"name\":" << JsonString(s.name)
      << ",\"bytes\":" << s.bytes
      << ",\"snapshot\":" << (s.snapshot ? "true" : "false")
      << ",\"superseded\":" << (s.superseded ? "true" : "false") << "}";
  }
  o << "],\"other_files\":[";
  for (std::size_t i = 0; i < j.other_files.size(); ++i) {
    o << (i ? "," : "") << JsonString(j.other_files[i]);
  }
  o << "],\"sessions\":[";
  std::map<std::string, const rejoin::JournalSession*> sorted;
  for (const auto& [id, s] : j.state.sessions) sorted[id] = &s;
  bool first = true;
  for (const auto& [id, s] : sorted) {
    o << (first ? "" : ",") << "{\"id\":" << JsonString(id)
      << ",\"next_seq\":" << s->next_seq
      << ",\"released_below\":" << s->released_below << ",\"ops\":{";
    bool first_state = true;
    for (const auto& [state, n] : CountByState(*s)) {
      o << (first_state ? "" : ",") << JsonString(StateName(j.role, state))
        << ":" << n;
      first_state = false;
    }
    o << "}}";
    first = false;
  }
  o << "]}";
  std::cout << o.str() << "\n";
}

int Inspect(const std::string& dir, bool json) {
  rejoin::Result<JournalInspection> j = rejoin::Journal::Inspect(dir);
  if (!j.ok()) {
    std::cerr << "rejoin-ctl: " << j.status().ToString() << "\n";
    return 1;
  }
  if (json) {
    PrintJson(dir, *j);
  } else {
    PrintText(dir, *j);
  }
  return j->integrity == JournalIntegrity::kCorrupt ? 1 : 0;
}

int Salvage(const std::string& dir, bool yes) {
  if (!yes) {
    std::cerr
        << "rejoin-ctl: salvage keeps the intact prefix of " << dir
        << ", moves the damaged segments aside and gives the journal a new "
           "journal id: its peers will treat this party's memory as lost. "
           "Run `rejoin-ctl journal inspect` first; pass --yes to proceed.\n";
    return 2;
  }
  rejoin::Result<rejoin::SalvageReport> r = rejoin::Journal::Salvage(dir);
  if (!r.ok()) {
    std::cerr << "rejoin-ctl: salvage refused: " << r.status().ToString()
              << "\n";
    return 1;
  }
  std::cout << "salvaged " << RoleName(r->role) << " journal of '" << r->owner
            << "' in " << dir << "\n"
            << "damage         " << r->damage << "\n"
            << "kept           " << r->sessions << " sessions, " << r->ops
            << " operations (everything before the damage)\n"
            << "next_seq       raised by " << rejoin::kSalvageSeqGap
            << " in every session\n"
            << "journal id     " << Hex(r->old_journal_id) << " -> "
            << Hex(r->new_journal_id) << "\n"
            << "incarnation    " << r->incarnation << "\n"
            << "snapshot       " << r->snapshot << "\n";
  for (const std::string& f : r->kept_aside) {
    std::cout << "moved aside    " << f << "\n";
  }
  for (const std::string& f : r->removed) {
    std::cout << "removed        " << f << "\n";
  }
  return 0;
}

// Asks the admin endpoint for "status" and prints the answer.
// Sends one admin request; the broker's JSON answer, or nullopt after
// saying why on stderr.
std::optional<nlohmann::json> AdminRequest(const std::string& endpoint,
                                           std::string_view request,
                                           int timeout_ms) {
  std::string reply;
  try {
    zmq::context_t context(1);
    zmq::socket_t socket(context, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
    socket.send(zmq::buffer(request), zmq::send_flags::none);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms));
    zmq::message_t msg;
    if ((item.revents & ZMQ_POLLIN) == 0 ||
        !socket.recv(msg, zmq::recv_flags::dontwait)) {
      std::fprintf(stderr,
                   "rejoin-ctl: no broker answered at %s within %d ms (is "
                   "it started with --admin %s?)\n",
                   endpoint.c_str(), timeout_ms, endpoint.c_str());
      return std::nullopt;
    }
    reply = msg.to_string();
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "rejoin-ctl: %s: %s\n", endpoint.c_str(), e.what());
    return std::nullopt;
  }
  nlohmann::json st = nlohmann::json::parse(reply, nullptr, false);
  if (st.is_discarded() || !st.is_object()) {
    std::fprintf(stderr,
                 "rejoin-ctl: %s answered something that is not "
                 "JSON\n",
                 endpoint.c_str());
    return std::nullopt;
  }
  if (st.contains("error")) {
    std::fprintf(stderr, "rejoin-ctl: broker: %s\n",
                 st["error"].get<std::string>().c_str());
    return std::nullopt;
  }
  return st;
}

int ReloadKeys(const std::string& endpoint, int timeout_ms) {
  if (!AdminRequest(endpoint, "reload-keys", timeout_ms)) return 1;
  std::cout << "keys file reloaded\n";
  return 0;
}

int BrokerStatus(const std::string& endpoint, bool json, int timeout_ms) {
  const std::optional<nlohmann::json> answer =
      AdminRequest(endpoint, "status", timeout_ms);
  if (!answer) return 1;
  const nlohmann::json& st = *answer;
  if (json) {
    std::cout << st.dump(2) << "\n";
    return 0;
  }
  const auto& g = st["grace"];
  std::cout << "broker " << st["endpoint"].get<std::string>() << "  epoch "
            << Hex(st["epoch"].get<std::uint64_t>()) << "  up "
            << st["uptime_ms"].get<std::uint64_t>() / 1000 << " s\n"
            << "grace: "
            << (g["active"].get<bool>()
                    ? "active, " +
                          std::to_string(
                              g["remaining_ms"].get<std::uint64_t>()) +
                          " ms left"
                    : "over")
            << "  roster servers " << g["roster_servers"] << "\n"
            << "sessions " << st["sessions"] << "  connections "
            << st["connections_count"] << "  servers alive "
            << st["servers_alive"] << "  tracked operations "
            << st["tracked_operations"] << "  retained bytes "
            << st["retained_bytes"] << "\n\n";
  std::cout << "services:\n";
  for (const auto& v : st["services"]) {
    std::cout << "  " << v["name"].get<std::string>() << "  servers "
              << v["servers"] << "  credit " << v["credit"] << "  queued "
              << v["queued"] << " (" << v["queued_bytes"] << " bytes)"
              << (v["registered"].get<bool>() ? "" : "  never registered")
              << "\n";
  }
  std::cout << "servers:\n";
  for (const auto& v : st["servers"]) {
    std::cout << "  " << v["id"].get<std::string>() << "  "
              << (v["alive"].get<bool>() ? "alive" : "dead") << "  incarnation "
              << v["incarnation"] << "  credit " << v["credit"]
              << "  in flight " << v["in_flight"]
              << (v["reported"].get<bool>() ? "" : "  not reported") << "\n";
  }
  std::cout << "connections:\n";
  for (const auto& v : st["connections"]) {
    std::cout << "  " << v["peer"].get<std::string>() << "  "
              << v["role"].get<std::string>();
    if (v["role"] == "server") {
      std::cout << " " << v["server_id"].get<std::string>();
    } else {
      std::cout << "  sessions " << v["sessions"];
    }
    std::cout << (v["silent"].get<bool>() ? "  silent" : "") << "\n";
  }
  std::cout << "decisions:";
  for (const auto& [action, n] : st["decisions"].items()) {
    std::cout << " " << action << "=" << n;
  }
  std::cout << "\ncounters:";
  for (const auto& [name, n] : st["counters"].items()) {
    std::cout << " " << name << "=" << n;
  }
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Operator tool for rejoin journals and brokers.", "rejoin-ctl"};
  app.set_version_flag("--version",
                       std::string("rejoin-ctl ") + REJOIN_VERSION);
  app.require_subcommand(1);
  CLI::App* journal = app.add_subcommand("journal", "journal directories");
  journal->require_subcommand(1);

  std::string dir;
  bool json = false;
  bool yes = false;
  CLI::App* inspect = journal->add_subcommand(
      "inspect", "read a journal without changing it; exit 1 if corrupt");
  inspect->add_option("dir", dir, "journal directory")->required();
  inspect->add_flag("--json", json, "print JSON");
  CLI::App* salvage = journal->add_subcommand(
      "salvage",
      "move the damage aside, keep the intact prefix, new journal id");
  salvage->add_option("dir", dir, "journal directory")->required();
  salvage->add_flag("--yes", yes, "really do it");

  CLI::App* broker = app.add_subcommand("broker", "a running broker");
  broker->require_subcommand(1);
  std::string endpoint;
  int timeout_ms = 3000;
  CLI::App* status = broker->add_subcommand(
      "status",
      "sessions, servers, services, grace and counters of a running broker");
  status
      ->add_option("endpoint", endpoint,
                   "the broker's admin endpoint (rejoin-broker --admin)")
      ->required();
  status->add_flag("--json", json, "print the broker's JSON as it is");
  status->add_option("--timeout-ms", timeout_ms, "how long to wait")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));

  CLI::App* reload = broker->add_subcommand(
      "reload-keys",
      "make a running broker read its keys file again (as SIGHUP does)");
  reload
      ->add_option("endpoint", endpoint,
                   "the broker's admin endpoint (rejoin-broker --admin)")
      ->required();
  reload->add_option("--timeout-ms", timeout_ms, "how long to wait")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*inspect) return Inspect(dir, json);
  if (*salvage) return Salvage(dir, yes);
  if (*status) return BrokerStatus(endpoint, json, timeout_ms);
  if (*reload) return ReloadKeys(endpoint, timeout_ms);
  return 2;
}
