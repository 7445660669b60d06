// Header-only bridge from rejoin's metric samples (rejoin/proto/metrics.h) to
// prometheus-cpp: a prometheus::Collectable that calls a function for fresh
// samples at every scrape. rejoin's libraries do not link prometheus-cpp;
// only a program that includes this header does. Typical use, with the
// application's own exposer:
//
//   auto metrics = std::make_shared<rejoin::PrometheusCollectable>(
//       [&client] { return rejoin::ClientMetrics(client->stats()); });
//   exposer.RegisterCollectable(metrics);
//
// The function runs on the exposer's HTTP thread; the stats() calls of
// Client, Server and Broker are safe from any thread.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rejoin/proto/metrics.h"

namespace rejoin {

// Groups samples into families by name (in the order names first appear).
inline std::vector<prometheus::MetricFamily> ToPrometheus(
    const std::vector<MetricSample>& samples) {
  std::vector<prometheus::MetricFamily> families;
  std::map<std::string, std::size_t> index;
  for (const MetricSample& s : samples) {
    auto [it, added] = index.try_emplace(s.name, families.size());
    if (added) {
      prometheus::MetricFamily family;
      family.name = s.name;
      family.help = s.help;
      switch (s.kind) {
        case MetricKind::kCounter:
          family.type = prometheus::MetricType::Counter;
          break;
        case MetricKind::kGauge:
          family.type = prometheus::MetricType::Gauge;
          break;
        case MetricKind::kHistogram:
          family.type = prometheus::MetricType::Histogram;
          break;
      }
      families.push_back(std::move(family));
    }
    prometheus::ClientMetric metric;
    for (const MetricLabel& l : s.labels) {
      metric.label.push_back({l.name, l.value});
    }
    switch (s.kind) {
      case MetricKind::kCounter:
        metric.counter.value = s.value;
        break;
      case MetricKind::kGauge:
        metric.gauge.value = s.value;
        break;
      case MetricKind::kHistogram:
        metric.histogram.sample_count = s.count;
        metric.histogram.sample_sum = s.sum;
        for (std::size_t i = 0; i < s.bounds.size() && i < s.cumulative.size();
             ++i) {
          metric.histogram.bucket.push_back({s.cumulative[i], s.bounds[i]});
        }
        metric.histogram.bucket.push_back(
            {s.count, std::numeric_limits<double>::infinity()});
        break;
    }
    families[it->second].metric.push_back(std::move(metric));
  }
  return families;
}

class PrometheusCollectable : public prometheus::Collectable {
 public:
  explicit PrometheusCollectable(
      std::function<std::vector<MetricSample>()> source)
      : source_(std::move(source)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return ToPrometheus(source_());
  }

 private:
  std::function<std::vector<MetricSample>()> source_;
};

}  // namespace rejoin
