// The in-memory FaultEnv of the power-loss tests (support/fault_env.h):
// what survives a power loss, torn and zero-filled writes, and injected
// errors.
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/fault_env.h"

namespace rejoin {
namespace {

using testing::FaultEnv;
using testing::PowerLossMode;

TEST(FaultEnv, PowerLossKeepsOnlySyncedBytesAndSyncedEntries) {
  FaultEnv env;
  bool created = false;
  ASSERT_EQ(env.CreateDirs("/d", &created), 0);
  std::unique_ptr<JournalWritableFile> a, b;
  ASSERT_EQ(env.NewWritableFile("/d/a", &a), 0);
  ASSERT_EQ(a->Append("synced"), 0);
  ASSERT_EQ(a->Sync(), 0);
  ASSERT_EQ(a->Append("-lost"), 0);
  ASSERT_EQ(env.SyncDir("/d"), 0);
  ASSERT_EQ(env.NewWritableFile("/d/b", &b), 0);  // entry never synced
  ASSERT_EQ(b->Append("data"), 0);
  ASSERT_EQ(b->Sync(), 0);
  ASSERT_EQ(env.RenameFile("/d/a", "/d/c"), 0);  // rename never synced
  env.PowerLoss(PowerLossMode::kDropUnsynced);
  EXPECT_EQ(env.FileNames("/d"), std::vector<std::string>{"a"});
  EXPECT_EQ(env.Contents("/d/a"), "synced");
}

TEST(FaultEnv, KeptUnsyncedEntriesStillLoseTheirUnsyncedBytes) {
  FaultEnv env;
  bool created = false;
  ASSERT_EQ(env.CreateDirs("/d", &created), 0);
  std::unique_ptr<JournalWritableFile> a;
  ASSERT_EQ(env.NewWritableFile("/d/a.tmp", &a), 0);
  ASSERT_EQ(a->Append("header"), 0);
  ASSERT_EQ(env.RenameFile("/d/a.tmp", "/d/a"), 0);
  a.reset();
  env.PowerLoss(PowerLossMode::kDropUnsynced, 0,
                /*keep_unsynced_entries=*/true);
  EXPECT_EQ(env.FileNames("/d"), std::vector<std::string>{"a"});
  EXPECT_EQ(env.Contents("/d/a"), "");
}

TEST(FaultEnv, TearAndZeroFillApplyToUnsyncedBytesOnly) {
  for (PowerLossMode mode :
       {PowerLossMode::kTearLastWrite, PowerLossMode::kZeroFillUnsynced}) {
    FaultEnv env;
    bool created = false;
    ASSERT_EQ(env.CreateDirs("/d", &created), 0);
    std::unique_ptr<JournalWritableFile> a;
    ASSERT_EQ(env.NewWritableFile("/d/a", &a), 0);
    ASSERT_EQ(env.SyncDir("/d"), 0);
    ASSERT_EQ(a->Append("abc"), 0);
    ASSERT_EQ(a->Sync(), 0);
    ASSERT_EQ(a->Append("defgh"), 0);
    a.reset();
    env.PowerLoss(mode, 2);
    EXPECT_EQ(env.Contents("/d/a"), mode == PowerLossMode::kTearLastWrite
                                        ? std::string("abcde")
                                        : std::string("abc\0\0\0\0\0", 8));
  }
}

TEST(FaultEnv, InjectedFaultsFailChangesWithTheirError) {
  FaultEnv env;
  bool created = false;
  ASSERT_EQ(env.CreateDirs("/d", &created), 0);
  std::unique_ptr<JournalWritableFile> a;
  ASSERT_EQ(env.NewWritableFile("/d/a", &a), 0);  // change 0
  env.LimitSpace(3);
  EXPECT_EQ(a->Append("abcdef"), ENOSPC);
  EXPECT_EQ(env.Contents("/d/a"), "abc");
  env.ClearFaults();
  env.FailFileSyncs(EIO);
  EXPECT_EQ(a->Sync(), EIO);
  env.ClearFaults();
  env.FailFrom(env.mutations() + 1, EIO);
  EXPECT_EQ(a->Append("x"), 0);
  EXPECT_EQ(a->Append("y"), EIO);
  EXPECT_EQ(env.RemoveFile("/d/a"), EIO);
  EXPECT_EQ(env.Contents("/d/a"), "abcx");
}

}  // namespace
}  // namespace rejoin
