// A client session's counters (ClientStats) as metric samples, for an
// application's own metrics exporter: rejoin/proto/prometheus.h serves them
// through prometheus-cpp. Names start with "rejoin_client_"; every sample
// carries the label session="<id>" when a session id is given, so the
// sessions of one process stay apart.
#pragma once

#include <string_view>
#include <vector>

#include "rejoin/client/client.h"
#include "rejoin/proto/metrics.h"

namespace rejoin {

std::vector<MetricSample> ClientMetrics(const ClientStats& stats,
                                        std::string_view session = {});

}  // namespace rejoin
