// The broker's state and counters as metric samples (names start with
// "rejoin_broker_"), served by `rejoin-broker --metrics ADDRESS` in the
// Prometheus text format and usable by an embedding program through
// rejoin/proto/prometheus.h.
#pragma once

#include <vector>

#include "rejoin/broker/broker.h"
#include "rejoin/proto/metrics.h"

namespace rejoin {

std::vector<MetricSample> BrokerMetrics(const BrokerStats& stats);
// The counters of BrokerMetrics(status.stats) and what only a status holds:
// per-service servers, credit and queues, operations tracked, recovery
// decisions by action, the dispatch-to-answer latency histogram.
std::vector<MetricSample> BrokerMetrics(const BrokerStatus& status);

// The resident set size of this process in bytes (0 if unknown).
std::uint64_t ResidentBytes();

}  // namespace rejoin
