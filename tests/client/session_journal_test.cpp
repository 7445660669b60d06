// SessionJournal: several sessions on one journal, and who commits what.
#include "session_journal.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "support/journal_ops.h"
#include "support/temp_dir.h"

namespace rejoin::client_internal {
namespace {

using testing::TempDir;

std::shared_ptr<SharedJournal> OpenShared(const TempDir& dir,
                                          Durability d = Durability::kSync) {
  auto shared = SharedJournal::Open(dir.path(), d);
  EXPECT_TRUE(shared.ok()) << shared.status().ToString();
  return shared.ok() ? std::move(shared).value() : nullptr;
}

std::unique_ptr<SessionJournal> AttachOk(std::shared_ptr<SharedJournal> j,
                                         const SessionId& session) {
  auto attached = SessionJournal::Attach(std::move(j), session);
  EXPECT_TRUE(attached.ok()) << attached.status().ToString();
  return attached.ok() ? std::move(attached).value() : nullptr;
}

TEST(SessionJournal, OneCommitCarriesTheRecordsOfEverySession) {
  TempDir dir;
  auto shared = OpenShared(dir);
  auto a = AttachOk(shared, "session-a");
  auto b = AttachOk(shared, "session-b");
  ASSERT_TRUE(a->AppendOp(10, testing::PreparedOp("a10", "echo")).ok());
  ASSERT_TRUE(b->AppendOp(20, testing::PreparedOp("b20", "echo")).ok());
  ASSERT_TRUE(a->AppendOp(11, testing::PreparedOp("a11", "echo")).ok());
  EXPECT_TRUE(a->dirty());
  EXPECT_TRUE(b->dirty());

  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(shared->commits(), 1u);
  EXPECT_EQ(shared->committed_records(), 3u);
  // b's record rode on a's commit: b's own commit finds it durable.
  ASSERT_TRUE(b->Commit().ok());
  EXPECT_EQ(shared->commits(), 1u);
  EXPECT_FALSE(a->dirty());
  EXPECT_FALSE(b->dirty());

  // A record appended after that commit needs a commit of its own.
  ASSERT_TRUE(b->AppendOp(21, testing::PreparedOp("b21", "echo")).ok());
  ASSERT_TRUE(b->Commit().ok());
  EXPECT_EQ(shared->commits(), 2u);
  EXPECT_EQ(shared->committed_records(), 4u);
}

TEST(SessionJournal, EachSessionSeesOnlyItsOwnRecords) {
  TempDir dir;
  {
    auto shared = OpenShared(dir);
    auto a = AttachOk(shared, "session-a");
    auto b = AttachOk(shared, "session-b");
    EXPECT_EQ(b->session(), nullptr);
    ASSERT_TRUE(a->AppendOp(10, testing::PreparedOp("a10", "echo")).ok());
    ASSERT_TRUE(b->AppendOp(20, testing::PreparedOp("b20", "echo")).ok());
    ASSERT_TRUE(a->Commit().ok());
  }
  // Reopened (a new process would see the same): records by session.
  auto shared = OpenShared(dir);
  auto a = AttachOk(shared, "session-a");
  auto b = AttachOk(shared, "session-b");
  auto c = AttachOk(shared, "session-c");
  EXPECT_FALSE(a->created());
  EXPECT_EQ(a->incarnation(), 2u);
  EXPECT_EQ(a->journal_id(), b->journal_id());
  ASSERT_NE(a->session(), nullptr);
  ASSERT_NE(b->session(), nullptr);
  EXPECT_EQ(c->session(), nullptr);
  ASSERT_EQ(a->session()->ops.size(), 1u);
  EXPECT_EQ(a->session()->ops.at(10).payload, "a10");
  ASSERT_EQ(b->session()->ops.size(), 1u);
  EXPECT_EQ(b->session()->ops.at(20).payload, "b20");
}

TEST(SessionJournal, ASessionAttachesOnceAtATime) {
  TempDir dir;
  auto shared = OpenShared(dir);
  auto a = AttachOk(shared, "session-a");
  auto again = SessionJournal::Attach(shared, "session-a");
  EXPECT_EQ(again.status().code(), ErrorCode::kJournalLocked);
  a.reset();
  EXPECT_NE(AttachOk(shared, "session-a"), nullptr);
}

TEST(SessionJournal, ConcurrentSessionsShareCommits) {
  // Eight threads append and commit as I/O threads do. Every record is
  // durable when its Commit returns, and the commits are fewer than the
  // records (each thread's commit waits behind the others' and then finds
  // its record carried, or carries theirs).
  TempDir dir;
  auto shared = OpenShared(dir);
  constexpr int kSessions = 8;
  constexpr int kRecords = 200;
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&shared, i] {
      auto j = AttachOk(shared, "session-" + std::to_string(i));
      for (Seq r = 1; r <= kRecords; ++r) {
        ASSERT_TRUE(
            j->AppendOp(r, testing::PreparedOp(std::to_string(r), "echo"))
                .ok());
        ASSERT_TRUE(j->Commit().ok());
        ASSERT_FALSE(j->dirty());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(shared->committed_records(), std::uint64_t{kSessions} * kRecords);
  EXPECT_LT(shared->commits(), shared->committed_records());
  shared.reset();
  auto reopened = OpenShared(dir);
  for (int i = 0; i < kSessions; ++i) {
    auto j = AttachOk(reopened, "session-" + std::to_string(i));
    ASSERT_NE(j->session(), nullptr);
    EXPECT_EQ(j->session()->ops.size(), std::size_t{kRecords});
  }
}

}  // namespace
}  // namespace rejoin::client_internal
