// ClientMetrics (rejoin/client/metrics.h).
#include "rejoin/client/metrics.h"

#include <string>

namespace rejoin {

std::vector<MetricSample> ClientMetrics(const ClientStats& s,
                                        std::string_view session) {
  std::vector<MetricLabel> l;
  if (!session.empty()) l.push_back({"session", std::string(session)});
  MetricList m("rejoin_client_");
  m.Counter("calls_total", "calls accepted by the library", s.calls, l);
  m.Counter("completed_total", "calls completed to the application",
            s.completed, l);
  m.Counter("requests_resent_total", "requests sent again with the resend flag",
            s.requests_resent, l);
  m.Counter("responses_recovered_total",
            "calls completed after a resend or a recovery",
            s.responses_recovered, l);
  m.Counter("in_doubt_total", "calls completed with status in_doubt",
            s.in_doubt, l);
  m.Counter("duplicate_responses_total",
            "responses dropped because their call had completed",
            s.duplicate_responses, l);
  m.Counter("state_exchanges_total",
            "returns to a broker with a state exchange", s.state_exchanges, l);
  m.Counter("deadline_exceeded_total", "waits that ended at their deadline",
            s.deadline_exceeded, l);
  m.Counter("malformed_total", "inbound frames dropped as undecodable",
            s.malformed, l);
  m.Counter("welcomes_total", "admissions by a broker", s.welcomes, l);
  m.Counter("calls_sent_by_caller_total",
            "calls journaled and sent on the calling thread while the I/O "
            "thread slept",
            s.calls_sent_by_caller, l);
  return m.Take();
}

}  // namespace rejoin
