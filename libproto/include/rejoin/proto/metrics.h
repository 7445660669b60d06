// Metrics as plain values: a flat list of named samples with Prometheus'
// naming and types, which the broker and both endpoint libraries produce from
// their counters (BrokerMetrics, ClientMetrics, ServerMetrics). Nothing here
// depends on a metrics library; rejoin/proto/prometheus.h turns a list into
// prometheus-cpp metric families for an application's own exposer, and the
// broker serves its list over HTTP (`rejoin-broker --metrics`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rejoin {

enum class MetricKind : std::uint8_t {
  kCounter = 1,
  kGauge = 2,
  kHistogram = 3
};

struct MetricLabel {
  std::string name;
  std::string value;
  bool operator==(const MetricLabel&) const = default;
};

// One sample. Samples of one family share name, help and kind and differ in
// their labels. Counter names end in "_total".
struct MetricSample {
  std::string name;
  std::string help;
  MetricKind kind = MetricKind::kCounter;
  std::vector<MetricLabel> labels;
  double value = 0;  // counter or gauge
  // Histogram: ascending upper bounds (the +Inf bucket is implied), the
  // cumulative count of observations at or below each bound, the count of
  // all observations and their sum.
  std::vector<double> bounds;
  std::vector<std::uint64_t> cumulative;
  std::uint64_t count = 0;
  double sum = 0;
};

// Appends samples to a list with a fixed name prefix ("rejoin_broker_").
class MetricList {
 public:
  explicit MetricList(std::string prefix) : prefix_(std::move(prefix)) {}

  void Counter(std::string_view name, std::string_view help,
               std::uint64_t value, std::vector<MetricLabel> labels = {});
  void Gauge(std::string_view name, std::string_view help, double value,
             std::vector<MetricLabel> labels = {});
  void Histogram(std::string_view name, std::string_view help,
                 std::vector<double> bounds,
                 std::vector<std::uint64_t> cumulative, std::uint64_t count,
                 double sum, std::vector<MetricLabel> labels = {});

  std::vector<MetricSample>& samples() { return samples_; }
  std::vector<MetricSample> Take() { return std::move(samples_); }

 private:
  std::string prefix_;
  std::vector<MetricSample> samples_;
};

// A fixed-bucket histogram of durations in microseconds, cheap enough to
// update on every answer (one comparison per bucket at most, no allocation).
class LatencyHistogram {
 public:
  // Upper bounds in microseconds: 50 µs to 10 s, roughly × 2.5 apart.
  static constexpr std::uint64_t kBoundsUs[] = {
      50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
      50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  static constexpr std::size_t kBuckets = std::size(kBoundsUs);

  void Observe(std::uint64_t micros);
  // As a histogram sample in seconds.
  void AppendTo(MetricList& list, std::string_view name,
                std::string_view help) const;
  std::uint64_t count() const { return count_; }
  std::uint64_t sum_us() const { return sum_us_; }
  // Observations at or below each bound of kBoundsUs.
  std::vector<std::uint64_t> Cumulative() const;

 private:
  std::uint64_t buckets_[kBuckets + 1] = {};  // last: above every bound
  std::uint64_t count_ = 0;
  std::uint64_t sum_us_ = 0;
};

}  // namespace rejoin
