// Percentiles and CDFs. Nearest rank, so every reported value is a sample.
#include "stats.h"

#include <algorithm>
#include <cmath>

namespace rejoin::bench {

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(q * n));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

std::vector<std::pair<double, double>> CdfPoints(
    const std::vector<double>& sorted, int points) {
  std::vector<std::pair<double, double>> out;
  if (sorted.empty() || points < 2) return out;
  // Fractions from 0 up to 1 - 1/n: spaced in log(1 - f).
  const double n = static_cast<double>(sorted.size());
  const double lowest_tail = std::max(1.0 / n, 1e-5);
  for (int i = 0; i < points; ++i) {
    const double t = static_cast<double>(i) / (points - 1);
    const double f = 1.0 - std::pow(lowest_tail, t);
    out.emplace_back(Percentile(sorted, f), f);
  }
  out.emplace_back(sorted.back(), 1.0);
  return out;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  if (values.size() % 2 == 1) return values[mid];
  return (values[mid - 1] + values[mid]) / 2;
}

}  // namespace rejoin::bench
