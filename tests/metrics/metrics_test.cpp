// Metric samples (rejoin/proto/metrics.h) of the broker, client and server,
// and their bridge to prometheus-cpp (rejoin/proto/prometheus.h): the text
// an application's exposer would serve names, types, labels and values
// right.
#include "rejoin/broker/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "rejoin/client/metrics.h"
#include "rejoin/proto/metrics.h"
#include "rejoin/proto/prometheus.h"
#include "rejoin/server/metrics.h"

namespace rejoin {
namespace {

std::string Serialize(const std::vector<MetricSample>& samples) {
  return prometheus::TextSerializer().Serialize(ToPrometheus(samples));
}

TEST(Metrics, ClientCountersCarryTheSessionLabel) {
  ClientStats stats;
  stats.calls = 7;
  stats.requests_resent = 2;
  stats.calls_sent_by_caller = 5;
  const std::string text = Serialize(ClientMetrics(stats, "s-1"));
  EXPECT_NE(text.find("# TYPE rejoin_client_calls_total counter"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rejoin_client_calls_total{session=\"s-1\"} 7"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rejoin_client_requests_resent_total{session=\"s-1\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("rejoin_client_calls_sent_by_caller_total{session=\"s-1\"} 5"),
      std::string::npos)
      << text;
}

TEST(Metrics, ServerCountersWithoutIdHaveNoLabels) {
  ServerStats stats;
  stats.executed = 41;
  const std::string text = Serialize(ServerMetrics(stats));
  EXPECT_NE(text.find("rejoin_server_executed_total 41"), std::string::npos)
      << text;
}

TEST(Metrics, OneFamilyPerNameWithEveryLabelledSample) {
  BrokerStats stats;
  stats.malformed = 3;
  stats.too_large = 5;
  stats.servers = 2;
  const auto families = ToPrometheus(BrokerMetrics(stats));
  int malformed_families = 0;
  for (const auto& f : families) {
    if (f.name != "rejoin_broker_malformed_total") continue;
    ++malformed_families;
    EXPECT_EQ(f.type, prometheus::MetricType::Counter);
    EXPECT_EQ(f.metric.size(), 5u);
  }
  EXPECT_EQ(malformed_families, 1);
  const std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_NE(text.find("rejoin_broker_malformed_total{class=\"too_large\"} 5"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE rejoin_broker_servers gauge"), std::string::npos);
  EXPECT_NE(text.find("rejoin_broker_servers 2"), std::string::npos);
}

TEST(Metrics, LatencyHistogramIsCumulativeWithAnInfiniteBucket) {
  LatencyHistogram h;
  h.Observe(10);        // <= 50 µs
  h.Observe(50);        // <= 50 µs (bounds are inclusive)
  h.Observe(700);       // <= 1 ms
  h.Observe(20000000);  // above every bound
  MetricList list("t_");
  h.AppendTo(list, "latency_seconds", "help");
  const std::string text = Serialize(list.Take());
  EXPECT_NE(text.find("t_latency_seconds_bucket{le=\"5e-05\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_latency_seconds_bucket{le=\"0.001\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_latency_seconds_bucket{le=\"10\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_latency_seconds_bucket{le=\"+Inf\"} 4"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_latency_seconds_count 4"), std::string::npos);
  EXPECT_EQ(h.count(), 4u);
}

TEST(Metrics, ResidentBytesOfThisProcessIsKnown) {
  EXPECT_GT(ResidentBytes(), 1024u * 1024u);
}

}  // namespace
}  // namespace rejoin
