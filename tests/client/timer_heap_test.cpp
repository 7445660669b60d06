// TimerHeap: stale timer entries are swept out without disturbing the order
// in which the live ones fire.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "client_impl.h"

namespace rejoin::client_internal {
namespace {

TEST(TimerHeap, PruneKeepsTheLiveEntriesInFiringOrder) {
  TimerHeap heap;
  const TimePoint t0 = Clock::now();
  // 100,000 calls' deadlines, of which only every 1000th is still live.
  for (Seq seq = 1; seq <= 100000; ++seq) {
    heap.push({t0 + std::chrono::microseconds(100000 - seq), seq, seq});
  }
  heap.PruneIf([](const TimerEntry& e) { return e.seq % 1000 != 0; });
  ASSERT_EQ(heap.size(), 100u);
  std::vector<Seq> order;
  while (!heap.empty()) {
    order.push_back(heap.top().seq);
    heap.pop();
  }
  // Latest seq has the earliest time.
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(order[i], 100000 - 1000 * i);
  }
}

TEST(TimerHeap, PruneOfNothingStaleChangesNothing) {
  TimerHeap heap;
  const TimePoint t0 = Clock::now();
  heap.push({t0 + std::chrono::milliseconds(3), 3, 0});
  heap.push({t0 + std::chrono::milliseconds(1), 1, 0});
  heap.push({t0 + std::chrono::milliseconds(2), 2, 0});
  heap.PruneIf([](const TimerEntry&) { return false; });
  ASSERT_EQ(heap.size(), 3u);
  EXPECT_EQ(heap.top().seq, 1u);
}

}  // namespace
}  // namespace rejoin::client_internal
