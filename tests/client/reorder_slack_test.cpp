// ReorderSlack: the loss hint's threshold follows the measured reordering.
#include "reorder_slack.h"

#include <gtest/gtest.h>

namespace rejoin::client_internal {
namespace {

// Answers `n` sends in order, starting after `*order`.
void AnswerInOrder(ReorderSlack& r, std::uint64_t* order, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) r.Answered(++*order);
}

TEST(ReorderSlack, StartsAtTheMaximum) {
  ReorderSlack r;
  EXPECT_EQ(r.slack(), ReorderSlack::kMax);
}

TEST(ReorderSlack, AnInOrderPathGetsTheMinimumAfterAWindow) {
  ReorderSlack r;
  std::uint64_t order = 0;
  AnswerInOrder(r, &order, ReorderSlack::kWindow - 1);
  EXPECT_EQ(r.slack(), ReorderSlack::kMax);  // not shown yet
  AnswerInOrder(r, &order, 1);
  EXPECT_EQ(r.slack(), ReorderSlack::kMin);
}

TEST(ReorderSlack, OvertakenAnswersRaiseItAtOnce) {
  ReorderSlack r;
  std::uint64_t order = 0;
  AnswerInOrder(r, &order, ReorderSlack::kWindow);
  ASSERT_EQ(r.slack(), ReorderSlack::kMin);
  // Send 1005 is answered after 1000..1004 and 1006: overtaken by 1006,
  // one send later, so the distance is 1 -> 2 * 1 + 2 = 4.
  for (std::uint64_t o : {1000u, 1001u, 1002u, 1003u, 1004u, 1006u}) {
    r.Answered(o);
  }
  r.Answered(1005);
  EXPECT_EQ(r.slack(), 4u);
  // Two servers: send 1010 overtaken by five later ones.
  r.Answered(1015);
  r.Answered(1010);
  EXPECT_EQ(r.slack(), 2 * 5 + 2u);
  // Never above the maximum.
  r.Answered(1100);
  r.Answered(1016);
  EXPECT_EQ(r.slack(), ReorderSlack::kMax);
}

TEST(ReorderSlack, FallsBackWhenAWindowShowsLessReordering) {
  ReorderSlack r;
  r.Answered(110);
  r.Answered(105);  // distance 5
  EXPECT_EQ(r.slack(), ReorderSlack::kMax);
  std::uint64_t order = 110;
  // The window that saw the distance of 5 ends at 2 x 5 + 2...
  AnswerInOrder(r, &order, ReorderSlack::kWindow - 2);
  EXPECT_EQ(r.slack(), 12u);
  // ...and the next, all in order, at the minimum.
  AnswerInOrder(r, &order, ReorderSlack::kWindow);
  EXPECT_EQ(r.slack(), ReorderSlack::kMin);
}

TEST(ReorderSlack, ANeedlessResendDoublesItForTheWindow) {
  ReorderSlack r;
  std::uint64_t order = 0;
  AnswerInOrder(r, &order, ReorderSlack::kWindow);
  ASSERT_EQ(r.slack(), ReorderSlack::kMin);
  r.Spurious();
  EXPECT_EQ(r.slack(), 2 * ReorderSlack::kMin);
  // The window with the needless resend does not lower it...
  AnswerInOrder(r, &order, ReorderSlack::kWindow);
  EXPECT_EQ(r.slack(), 2 * ReorderSlack::kMin);
  // ...a clean one does.
  AnswerInOrder(r, &order, ReorderSlack::kWindow);
  EXPECT_EQ(r.slack(), ReorderSlack::kMin);
  for (int i = 0; i < 10; ++i) r.Spurious();
  EXPECT_EQ(r.slack(), ReorderSlack::kMax);
}

}  // namespace
}  // namespace rejoin::client_internal
