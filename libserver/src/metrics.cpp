// ServerMetrics (rejoin/server/metrics.h).
#include "rejoin/server/metrics.h"

#include <string>

namespace rejoin {

std::vector<MetricSample> ServerMetrics(const ServerStats& s,
                                        std::string_view server_id) {
  std::vector<MetricLabel> l;
  if (!server_id.empty()) l.push_back({"server", std::string(server_id)});
  MetricList m("rejoin_server_");
  m.Counter("executed_total", "handler runs", s.executed, l);
  m.Counter("duplicates_total", "requests answered from the journal",
            s.duplicates, l);
  m.Counter("responses_resent_total", "stored responses sent again",
            s.responses_resent, l);
  m.Counter("reexecuted_total", "operations in doubt run again", s.reexecuted,
            l);
  m.Counter("resolved_total", "operations in doubt settled by the resolve hook",
            s.resolved, l);
  m.Counter("answered_in_doubt_total", "operations answered in_doubt",
            s.answered_in_doubt, l);
  m.Counter("released_total", "operations released", s.released, l);
  m.Counter("orphans_total", "operations kept for sessions not known",
            s.orphans, l);
  m.Counter("state_exchanges_total",
            "returns to a broker with a state exchange", s.state_exchanges, l);
  m.Counter("malformed_total", "broker messages dropped as undecodable",
            s.malformed, l);
  m.Counter("sessions_expired_total",
            "sessions released after the session expiry without activity",
            s.sessions_expired, l);
  return m.Take();
}

}  // namespace rejoin
