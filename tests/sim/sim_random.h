// The simulator's one source of randomness: a small, fast generator
// (splitmix64) seeded from the run's seed. Every random choice of a run is
// drawn from generators forked from it, so a seed replays the whole run.
#pragma once

#include <cstdint>

namespace rejoin::sim {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); 0 when n is 0.
  std::uint64_t Below(std::uint64_t n) { return n == 0 ? 0 : Next() % n; }
  // Uniform in [lo, hi].
  std::int64_t Between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(
                    Below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  // True with probability p (p <= 0: never).
  bool Chance(double p) {
    if (p <= 0) return false;
    return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p;
  }
  // A generator of its own for one party or purpose.
  Rng Fork() { return Rng(Next()); }

 private:
  std::uint64_t state_;
};

}  // namespace rejoin::sim
