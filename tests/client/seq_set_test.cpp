// SeqSet: a sorted set of seqs with cheap in-order inserts and prefix
// removal, checked against std::set on random operations.
#include "seq_set.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

namespace rejoin::client_internal {
namespace {

std::vector<Seq> Contents(const SeqSet& s) { return {s.begin(), s.end()}; }

TEST(SeqSet, KeepsOrderAndIgnoresDuplicates) {
  SeqSet s;
  for (Seq x : {5u, 7u, 6u, 1u, 7u, 9u, 5u}) s.insert(x);
  EXPECT_EQ(Contents(s), (std::vector<Seq>{1, 5, 6, 7, 9}));
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(*s.lower_bound(6), 6u);
  EXPECT_EQ(*s.lower_bound(8), 9u);
  EXPECT_EQ(s.lower_bound(10), s.end());
}

TEST(SeqSet, EraseReportsWhetherTheSeqWasThere) {
  SeqSet s;
  s.insert(3);
  s.insert(4);
  EXPECT_EQ(s.erase(2), 0u);
  EXPECT_EQ(s.erase(3), 1u);
  EXPECT_EQ(s.erase(3), 0u);
  EXPECT_EQ(Contents(s), (std::vector<Seq>{4}));
}

TEST(SeqSet, EraseBelowHandsOverThePrefixInOrder) {
  SeqSet s;
  for (Seq x : {10u, 2u, 8u, 4u, 6u}) s.insert(x);
  std::vector<Seq> out{1};
  s.erase_below(7, &out);
  EXPECT_EQ(out, (std::vector<Seq>{1, 2, 4, 6}));
  EXPECT_EQ(Contents(s), (std::vector<Seq>{8, 10}));
  s.erase_below(100);
  EXPECT_TRUE(s.empty());
}

TEST(SeqSet, MatchesStdSetOnRandomOperations) {
  std::mt19937_64 rng(42);
  SeqSet s;
  std::set<Seq> model;
  Seq base = 0;
  for (int i = 0; i < 20000; ++i) {
    const Seq x = base + rng() % 64;
    switch (rng() % 4) {
      case 0:
      case 1:
        s.insert(x);
        model.insert(x);
        break;
      case 2:
        ASSERT_EQ(s.erase(x), model.erase(x));
        break;
      case 3: {
        base += rng() % 8;
        std::vector<Seq> out;
        s.erase_below(base, &out);
        std::vector<Seq> expected(model.begin(), model.lower_bound(base));
        model.erase(model.begin(), model.lower_bound(base));
        ASSERT_EQ(out, expected);
        break;
      }
    }
    ASSERT_EQ(Contents(s), std::vector<Seq>(model.begin(), model.end()));
  }
}

}  // namespace
}  // namespace rejoin::client_internal
