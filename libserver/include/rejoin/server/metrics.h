// A server's counters (ServerStats) as metric samples, for an application's
// own metrics exporter: rejoin/proto/prometheus.h serves them through
// prometheus-cpp. Names start with "rejoin_server_"; every sample carries
// the label server="<id>" when a server id is given.
#pragma once

#include <string_view>
#include <vector>

#include "rejoin/proto/metrics.h"
#include "rejoin/server/server.h"

namespace rejoin {

std::vector<MetricSample> ServerMetrics(const ServerStats& stats,
                                        std::string_view server_id = {});

}  // namespace rejoin
