// BrokerMetrics (rejoin/broker/metrics.h).
#include "rejoin/broker/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "rejoin/proto/breakpoint.h"

namespace rejoin {

std::vector<MetricSample> BrokerMetrics(const BrokerStats& s) {
  MetricList m("rejoin_broker_");
  m.Gauge("sessions", "client sessions known now",
          static_cast<double>(s.sessions));
  m.Gauge("connections", "endpoint connections that hold an id now",
          static_cast<double>(s.connections));
  m.Gauge("servers", "servers alive now", static_cast<double>(s.servers));
  m.Counter("requests_total", "requests dispatched to a server (first time)",
            s.requests);
  m.Counter("responses_total", "responses forwarded to clients", s.responses);
  m.Counter("resends_forwarded_total",
            "client resends passed on to the party holding the operation",
            s.forwarded_resends);
  m.Counter("responses_replayed_total",
            "resends answered from the broker's retained copy",
            s.responses_replayed);
  m.Counter("replays_held_total", "replays kept back for a later batch",
            s.replays_held);
  m.Counter("probes_total", "probes of unanswered operations", s.probes);
  m.Counter("recover_messages_total", "RECOVER messages sent",
            s.recover_messages);
  m.Counter("state_exchanges_total", "state exchanges received",
            s.state_exchanges);
  m.Counter("moved_total",
            "operations re-dispatched after their server's lease ended",
            s.moved);
  m.Counter("answered_in_doubt_total", "operations answered in_doubt",
            s.answered_in_doubt);
  m.Counter("answered_errors_total",
            "operations answered with an error by the broker",
            s.answered_errors);
  m.Counter("orphans_total", "operations reported for sessions not known",
            s.orphans);
  m.Counter("injected_drops_total", "envelopes dropped by loss injection",
            s.injected_drops);
  const char* kMalformedHelp = "inbound frames refused, by class";
  m.Counter("malformed_total", kMalformedHelp, s.malformed,
            {{"class", "undecodable"}});
  m.Counter("malformed_total", kMalformedHelp, s.bad_version,
            {{"class", "unsupported_version"}});
  m.Counter("malformed_total", kMalformedHelp, s.unknown_type,
            {{"class", "unknown_type"}});
  m.Counter("malformed_total", kMalformedHelp, s.too_large,
            {{"class", "too_large"}});
  m.Counter("malformed_total", kMalformedHelp, s.unknown_peer,
            {{"class", "unknown_peer"}});
  const char* kRefusedHelp = "admissions and messages refused, by reason";
  m.Counter("refused_total", kRefusedHelp, s.fenced, {{"reason", "fenced"}});
  m.Counter("refused_total", kRefusedHelp, s.duplicate_identity,
            {{"reason", "duplicate_identity"}});
  m.Counter("refused_total", kRefusedHelp, s.protocol_violations,
            {{"reason", "protocol_violation"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_session_quota,
            {{"reason", "sessions_per_connection"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_sessions,
            {{"reason", "max_sessions"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_reported_sessions,
            {{"reason", "reported_sessions_per_server"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_unacked,
            {{"reason", "session_unacked"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_queue_bytes,
            {{"reason", "queue_bytes"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_memory,
            {{"reason", "memory_budget"}});
  m.Counter("refused_total", kRefusedHelp, s.refused_connection,
            {{"reason", "connection_bounds"}});
  m.Counter("servers_silent_total",
            "servers declared dead after 3 silent heartbeat intervals",
            s.servers_silent);
  m.Counter("reports_asked_again_total",
            "welcomed servers asked to HELLO again because their state "
            "exchange did not come within 3 heartbeat intervals",
            s.reports_asked_again);
  m.Counter("probes_ended_total",
            "operations answered in_doubt after the same probe answer "
            "repeated",
            s.probes_ended);
  m.Counter("expired_reported_sessions_total",
            "sessions only servers reported, forgotten after their expiry",
            s.expired_reported_sessions);
  m.Gauge("forgotten_sessions",
          "forgotten sessions whose server is remembered for their resends",
          static_cast<double>(s.forgotten_sessions));
  m.Counter("forgotten_dropped_total",
            "forgotten sessions dropped beyond max_forgotten_sessions",
            s.forgotten_dropped);
  m.Counter("forgotten_resends_total",
            "untracked requests of forgotten sessions, by outcome",
            s.forgotten_routed, {{"outcome", "sent_to_holder"}});
  m.Counter("forgotten_resends_total",
            "untracked requests of forgotten sessions, by outcome",
            s.forgotten_in_doubt, {{"outcome", "in_doubt"}});
  m.Counter("conflicts_total",
            "requests reusing the seq of a kept answer for another request",
            s.conflicts);
  m.Counter("accept_failures_total",
            "connections that could not be accepted (descriptors exhausted)",
            s.accept_failures);
  m.Counter("connections_shed_total",
            "idle connections shut down because descriptors ran out",
            s.connections_shed);
  m.Counter("not_authorized_total",
            "messages refused: an id outside the sender's principal, or a "
            "service it may not call or serve (CURVE)",
            s.not_authorized);
  m.Counter("revoked_messages_total",
            "messages dropped because their key left the keys file",
            s.revoked_messages);
  m.Gauge("retained_bytes",
          "request and response bytes the broker keeps for operations now",
          static_cast<double>(s.retained_bytes));
  m.Gauge("grace_period_seconds",
          "length of the last grace period after start (0 while it runs)",
          static_cast<double>(s.grace_ms) / 1000.0);
  m.Gauge("grace_ended_early",
          "1 when the roster ended the grace period before its limit",
          static_cast<double>(s.grace_ended_early));
  m.Gauge("roster_servers", "server ids listed in the roster",
          static_cast<double>(s.roster_servers));
  m.Gauge("resident_memory_bytes", "resident set size of the broker process",
          static_cast<double>(ResidentBytes()));
  return m.Take();
}

std::vector<MetricSample> BrokerMetrics(const BrokerStatus& st) {
  std::vector<MetricSample> out = BrokerMetrics(st.stats);
  MetricList m("rejoin_broker_");
  m.Gauge("tracked_operations", "operations the broker tracks now",
          static_cast<double>(st.tracked_operations));
  m.Gauge("grace_period_active", "1 while the grace period after start runs",
          st.in_grace ? 1.0 : 0.0);
  for (const ServiceStatus& v : st.services) {
    const std::vector<MetricLabel> l = {{"service", v.name}};
    m.Gauge("service_servers", "alive servers of the service",
            static_cast<double>(v.servers), l);
    m.Gauge("service_credit", "credit of the service's alive servers",
            static_cast<double>(v.credit), l);
    m.Gauge("service_queued", "requests queued for the service",
            static_cast<double>(v.queued), l);
    m.Gauge("service_queued_bytes", "request bytes queued for the service",
            static_cast<double>(v.queued_bytes), l);
  }
  for (const ServerStatus& v : st.servers) {
    if (!v.alive) continue;
    m.Gauge("server_in_flight", "requests dispatched to the server, unanswered",
            static_cast<double>(v.in_flight), {{"server", v.id}});
  }
  for (std::size_t a = 0; a < kActionCount; ++a) {
    m.Counter("decisions_total", "recovery decisions made, by action",
              st.decisions[a],
              {{"action", std::string(ActionName(static_cast<Action>(a)))}});
  }
  for (std::size_t c = 0; c < kWireCodeCount; ++c) {
    const auto code = static_cast<ErrorCode>(c);
    if (!IsWireCode(code) || code == ErrorCode::kOk) continue;
    const std::vector<MetricLabel> l = {
        {"code", std::string(ErrorCodeName(code))}};
    m.Counter("answered_by_code_total",
              "RESPONSEs the broker answered in a server's place, by status",
              st.answered_by_code[c], l);
    m.Counter("errors_sent_total", "ERROR messages sent, by code",
              st.errors_by_code[c], l);
  }
  std::vector<double> bounds;
  for (std::uint64_t b : st.latency_bounds_us) {
    bounds.push_back(static_cast<double>(b) / 1e6);
  }
  m.Histogram("dispatch_to_answer_seconds",
              "from a request's dispatch to its server's answer",
              std::move(bounds), st.latency_cumulative, st.latency_count,
              static_cast<double>(st.latency_sum_us) / 1e6);
  for (MetricSample& sample : m.Take()) out.push_back(std::move(sample));
  return out;
}

std::uint64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? resident * static_cast<std::uint64_t>(page) : 0;
}

}  // namespace rejoin
