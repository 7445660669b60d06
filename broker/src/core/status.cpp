// What the core holds, for operators: the status snapshot and the
// counters.
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"

namespace rejoin::broker_internal {

void BrokerCore::FillStatus(BrokerStatus& st, Time now) const {
  st.stats = Snapshot();
  st.epoch = epoch_;
  st.uptime_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now - start_)
          .count());
  st.in_grace = InGrace(now);
  if (st.in_grace) {
    st.grace_remaining_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(grace_end_ - now)
            .count());
  }
  for (const auto& [sid, session] : sessions_) {
    st.tracked_operations += session.ops.size();
  }
  std::map<std::string, ServiceStatus> services;
  for (const auto& [name, svc] : services_) {
    ServiceStatus& out = services[name];
    out.name = name;
    out.registered = svc.registered;
    out.queued = svc.queue.size();
    out.queued_bytes = svc.queued_bytes;
  }
  std::map<std::string, ServerStatus> servers;
  for (const auto& [id, srv] : servers_) {
    ServerStatus& out = servers[id];
    out.id = id;
    out.alive = srv.holder.alive;
    out.reported = srv.reported;
    out.incarnation = srv.holder.incarnation;
    out.credit = srv.credit_limit;
    out.in_flight = srv.in_flight;
    for (const ServiceSpec& spec : srv.services) {
      out.services.push_back(spec.name);
      if (!srv.holder.alive) continue;
      ServiceStatus& svc = services[spec.name];
      svc.name = spec.name;
      ++svc.servers;
      svc.credit += spec.credit;
    }
  }
  for (auto& [name, svc] : services) st.services.push_back(std::move(svc));
  for (auto& [id, srv] : servers) st.servers.push_back(std::move(srv));
  static constexpr char kHex[] = "0123456789abcdef";
  for (const auto& [route, c] : routes_) {
    ConnectionStatus out;
    for (char ch : route) {
      const auto b = static_cast<unsigned char>(ch);
      out.peer.push_back(kHex[b >> 4]);
      out.peer.push_back(kHex[b & 15]);
    }
    out.server = c.role == Role::kServer;
    out.server_id = c.server;
    out.sessions = c.sessions.size();
    out.silent = c.silent;
    st.connections.push_back(std::move(out));
  }
  std::copy(std::begin(decisions_), std::end(decisions_),
            std::begin(st.decisions));
  std::copy(std::begin(answered_by_code_), std::end(answered_by_code_),
            std::begin(st.answered_by_code));
  std::copy(std::begin(errors_by_code_), std::end(errors_by_code_),
            std::begin(st.errors_by_code));
  st.latency_bounds_us.assign(std::begin(LatencyHistogram::kBoundsUs),
                              std::end(LatencyHistogram::kBoundsUs));
  st.latency_cumulative = latency_.Cumulative();
  st.latency_count = latency_.count();
  st.latency_sum_us = latency_.sum_us();
}

BrokerStats BrokerCore::Snapshot() const {
  auto v = [](const std::atomic<std::uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  const Counters& c = counters_;
  BrokerStats s;
  s.sessions = v(c.sessions);
  s.connections = v(c.connections);
  s.servers = v(c.servers);
  s.requests = v(c.requests);
  s.responses = v(c.responses);
  s.forwarded_resends = v(c.forwarded_resends);
  s.responses_replayed = v(c.responses_replayed);
  s.replays_held = v(c.replays_held);
  s.probes = v(c.probes);
  s.recover_messages = v(c.recover_messages);
  s.state_exchanges = v(c.state_exchanges);
  s.moved = v(c.moved);
  s.answered_in_doubt = v(c.answered_in_doubt);
  s.answered_errors = v(c.answered_errors);
  s.injected_drops = v(c.injected_drops);
  s.malformed = v(c.malformed);
  s.bad_version = v(c.bad_version);
  s.unknown_type = v(c.unknown_type);
  s.too_large = v(c.too_large);
  s.unknown_peer = v(c.unknown_peer);
  s.fenced = v(c.fenced);
  s.duplicate_identity = v(c.duplicate_identity);
  s.orphans = v(c.orphans);
  s.grace_ms = v(c.grace_ms);
  s.grace_ended_early = v(c.grace_ended_early);
  s.roster_servers = v(c.roster_servers);
  s.servers_silent = v(c.servers_silent);
  s.reports_asked_again = v(c.reports_asked_again);
  s.protocol_violations = v(c.protocol_violations);
  s.probes_ended = v(c.probes_ended);
  s.refused_session_quota = v(c.refused_session_quota);
  s.refused_sessions = v(c.refused_sessions);
  s.refused_reported_sessions = v(c.refused_reported_sessions);
  s.refused_unacked = v(c.refused_unacked);
  s.refused_queue_bytes = v(c.refused_queue_bytes);
  s.refused_memory = v(c.refused_memory);
  s.refused_connection = v(c.refused_connection);
  s.expired_reported_sessions = v(c.expired_reported_sessions);
  s.forgotten_sessions = v(c.forgotten_sessions);
  s.forgotten_dropped = v(c.forgotten_dropped);
  s.forgotten_routed = v(c.forgotten_routed);
  s.forgotten_in_doubt = v(c.forgotten_in_doubt);
  s.conflicts = v(c.conflicts);
  s.not_authorized = v(c.not_authorized);
  s.retained_bytes = v(c.retained_bytes);
  s.accept_failures = v(c.accept_failures);
  return s;
}

}  // namespace rejoin::broker_internal
