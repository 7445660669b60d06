// The bank example's ledger: decisions survive a reopen, a torn last line is
// cut off, and a transfer recorded twice is reported by Check().
#include "bank_ledger.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace rejoin::examples {
namespace {

using rejoin::testing::TempDir;

std::unique_ptr<BankLedger> MustOpen(
    const std::string& path,
    BankLedger::Mode mode = BankLedger::Mode::kReadWrite) {
  auto ledger = BankLedger::Open(path, mode, /*sync=*/false);
  EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
  return ledger.ok() ? std::move(*ledger) : nullptr;
}

TEST(BankLedger, ParsesTransfers) {
  auto t = ParseTransfer("3 7 250");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->from, 3);
  EXPECT_EQ(t->to, 7);
  EXPECT_EQ(t->amount, 250);
  EXPECT_FALSE(ParseTransfer("3 3 1").ok());
  EXPECT_FALSE(ParseTransfer("3 10 1").ok());
  EXPECT_FALSE(ParseTransfer("3 4 0").ok());
  EXPECT_FALSE(ParseTransfer("3 4").ok());
  EXPECT_FALSE(ParseTransfer("a b c").ok());
}

TEST(BankLedger, AppliesAndReplaysDecisions) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  {
    auto ledger = MustOpen(path);
    auto ok = ledger->Apply("alice", 1, Transfer{0, 1, 400});
    ASSERT_TRUE(ok.ok());
    EXPECT_TRUE(ok->applied);
    EXPECT_EQ(ok->reply, "ok:600:1400");
    auto rejected = ledger->Apply("alice", 2, Transfer{0, 1, 601});
    ASSERT_TRUE(rejected.ok());
    EXPECT_FALSE(rejected->applied);
  }
  auto ledger = MustOpen(path);
  auto found = ledger->Find("alice", 1);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->reply, "ok:600:1400");
  EXPECT_FALSE(ledger->Find("alice", 3));
  LedgerReport report = ledger->Check();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.balances[0], 600);
  EXPECT_EQ(report.balances[1], 1400);
  EXPECT_EQ(report.total, kInitialTotal);
  EXPECT_EQ(report.applied, 1u);
  EXPECT_EQ(report.rejected, 1u);
}

TEST(BankLedger, TornLastLineIsCutOff) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  {
    auto ledger = MustOpen(path);
    ASSERT_TRUE(ledger->Apply("alice", 1, Transfer{0, 1, 10}).ok());
  }
  {
    std::ofstream out(path, std::ios::app);
    out << "alice 2 0 1 1";  // no newline: a write cut short
  }
  auto read_only = MustOpen(path, BankLedger::Mode::kReadOnly);
  EXPECT_EQ(read_only->Check().applied, 1u);
  auto ledger = MustOpen(path);
  ASSERT_TRUE(ledger->Apply("alice", 2, Transfer{0, 1, 5}).ok());
  ledger.reset();
  EXPECT_EQ(MustOpen(path)->Check().applied, 2u);
}

TEST(BankLedger, CorruptLineBeforeTheEndIsReported) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  {
    std::ofstream out(path);
    out << "nonsense\nalice 1 0 1 5 ok:995:1005\n";
  }
  auto ledger = BankLedger::Open(path, BankLedger::Mode::kReadOnly, false);
  ASSERT_FALSE(ledger.ok());
  EXPECT_EQ(ledger.status().code(), ErrorCode::kCorrupt);
}

TEST(BankLedger, TransferRecordedTwiceIsReported) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  {
    auto ledger = MustOpen(path);
    ASSERT_TRUE(ledger->Apply("alice", 1, Transfer{0, 1, 10}).ok());
    ASSERT_TRUE(ledger->Apply("alice", 1, Transfer{0, 1, 10}).ok());
  }
  LedgerReport report = MustOpen(path)->Check();
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.duplicates.size(), 1u);
  EXPECT_EQ(report.duplicates[0].first,
            (std::pair<SessionId, Seq>{"alice", 1}));
  EXPECT_EQ(report.duplicates[0].second, 2);
}

}  // namespace
}  // namespace rejoin::examples
