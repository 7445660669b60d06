// Latency statistics over exact samples: nearest-rank percentiles and the
// points of an empirical CDF, and the median used for --repeat.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace rejoin::bench {

// Nearest-rank percentile of sorted samples: the smallest value v with at
// least q of the samples <= v. q in [0, 1]; 0 for no samples.
double Percentile(const std::vector<double>& sorted, double q);

// (value, fraction <= value) at `points` fractions spread evenly on a
// log scale of (1 - fraction), so the tail is visible. Samples sorted.
std::vector<std::pair<double, double>> CdfPoints(
    const std::vector<double>& sorted, int points);

// Median of unsorted values (mean of the middle two for even counts); 0 for
// none.
double Median(std::vector<double> values);

}  // namespace rejoin::bench
