// MetricList and LatencyHistogram (rejoin/proto/metrics.h).
#include "rejoin/proto/metrics.h"

namespace rejoin {

void MetricList::Counter(std::string_view name, std::string_view help,
                         std::uint64_t value, std::vector<MetricLabel> labels) {
  MetricSample s;
  s.name = prefix_ + std::string(name);
  s.help = help;
  s.kind = MetricKind::kCounter;
  s.labels = std::move(labels);
  s.value = static_cast<double>(value);
  samples_.push_back(std::move(s));
}

void MetricList::Gauge(std::string_view name, std::string_view help,
                       double value, std::vector<MetricLabel> labels) {
  MetricSample s;
  s.name = prefix_ + std::string(name);
  s.help = help;
  s.kind = MetricKind::kGauge;
  s.labels = std::move(labels);
  s.value = value;
  samples_.push_back(std::move(s));
}

void MetricList::Histogram(std::string_view name, std::string_view help,
                           std::vector<double> bounds,
                           std::vector<std::uint64_t> cumulative,
                           std::uint64_t count, double sum,
                           std::vector<MetricLabel> labels) {
  MetricSample s;
  s.name = prefix_ + std::string(name);
  s.help = help;
  s.kind = MetricKind::kHistogram;
  s.labels = std::move(labels);
  s.bounds = std::move(bounds);
  s.cumulative = std::move(cumulative);
  s.count = count;
  s.sum = sum;
  samples_.push_back(std::move(s));
}

void LatencyHistogram::Observe(std::uint64_t micros) {
  std::size_t i = 0;
  while (i < kBuckets && micros > kBoundsUs[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_us_ += micros;
}

std::vector<std::uint64_t> LatencyHistogram::Cumulative() const {
  std::vector<std::uint64_t> out;
  out.reserve(kBuckets);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    running += buckets_[i];
    out.push_back(running);
  }
  return out;
}

void LatencyHistogram::AppendTo(MetricList& list, std::string_view name,
                                std::string_view help) const {
  std::vector<double> bounds;
  bounds.reserve(kBuckets);
  for (std::uint64_t b : kBoundsUs) {
    bounds.push_back(static_cast<double>(b) / 1e6);
  }
  list.Histogram(name, help, std::move(bounds), Cumulative(), count_,
                 static_cast<double>(sum_us_) / 1e6);
}

}  // namespace rejoin
