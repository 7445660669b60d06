// The journal's contract: what Append*/Commit record, what replay rebuilds,
// the release and payload rules, durability levels, segments, compaction,
// the directory lock and the errors of Open. Damaged bytes are covered in
// journal_corruption_test.cpp, kill -9 in journal_crash_test.cpp.
#include "rejoin/proto/journal.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

constexpr JournalId kTestJournalId = 0x1122334455667788u;

JournalOptions Options(const std::string& dir,
                       JournalRole role = JournalRole::kClient,
                       std::string owner = "client-1",
                       Durability durability = Durability::kProcess) {
  JournalOptions o;
  o.dir = dir;
  o.role = role;
  o.owner_id = std::move(owner);
  o.durability = durability;
  o.new_journal_id = [] { return kTestJournalId; };
  return o;
}

JournalOptions ServerOptions(const std::string& dir) {
  return Options(dir, JournalRole::kServer, "server-1");
}

// Opens or records a test failure and returns null.
std::unique_ptr<Journal> OpenJournal(const JournalOptions& o) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  if (!r.ok()) {
    ADD_FAILURE() << "Open(" << o.dir << "): " << r.status().ToString();
    return nullptr;
  }
  return std::move(r).value();
}

ErrorCode OpenError(const JournalOptions& o) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  return r.status().code();
}

JournalOp Op(std::uint8_t state, std::string payload,
             std::string service = "billing") {
  JournalOp op;
  op.state = state;
  op.service = std::move(service);
  op.payload = std::move(payload);
  return op;
}

constexpr auto kPrepared = static_cast<std::uint8_t>(ClientOpState::kPrepared);
constexpr auto kSent = static_cast<std::uint8_t>(ClientOpState::kSent);
constexpr auto kCompleted =
    static_cast<std::uint8_t>(ClientOpState::kCompleted);
constexpr auto kReceived = static_cast<std::uint8_t>(ServerOpState::kReceived);
constexpr auto kExecuted = static_cast<std::uint8_t>(ServerOpState::kExecuted);
constexpr auto kReleased = static_cast<std::uint8_t>(ServerOpState::kReleased);

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    if (name.starts_with("seg-")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

using testing::ReadFile;
using testing::WriteFile;

void MustAppend(Journal& j, const std::string& session, Seq seq, JournalOp op) {
  Status s = j.AppendOp(session, seq, std::move(op));
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void MustCommit(Journal& j) {
  Status s = j.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

// ---------------------------------------------------------------------------
// Round trips.

TEST(Journal, NewJournalStartsAtIncarnationOneWithTheInjectedId) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(j->report().created);
  EXPECT_EQ(j->incarnation(), 1u);
  EXPECT_EQ(j->journal_id(), kTestJournalId);
  EXPECT_TRUE(j->state().sessions.empty());
  EXPECT_EQ(j->durability(), Durability::kProcess);
  EXPECT_TRUE(fs::exists(dir.Sub("LOCK")));
  EXPECT_EQ(SegmentFiles(dir.path()),
            std::vector<std::string>{"seg-000000000001.rjl"});
}

TEST(Journal, CreatesMissingDirectories) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.Sub("a/b/journal")));
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(fs::is_directory(dir.Sub("a/b/journal")));
}

TEST(Journal, RoundTripKeepsStateAdvancesIncarnationKeepsJournalId) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  JournalState before;
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "session-a", 1, Op(kPrepared, "request-1"));
    MustAppend(*j, "session-a", 2, Op(kPrepared, "request-2"));
    MustAppend(*j, "session-b", 7, Op(kSent, "request-7", "config"));
    EXPECT_EQ(j->pending_records(), 3u);
    MustCommit(*j);
    EXPECT_EQ(j->pending_records(), 0u);
    before = j->state();
  }
  // Each later open gets an id source that would betray a regenerated id.
  o.new_journal_id = [] { return JournalId{99}; };
  for (Incarnation expected = 2; expected <= 4; ++expected) {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    EXPECT_FALSE(j->report().created);
    EXPECT_EQ(j->state(), before);
    EXPECT_EQ(j->incarnation(), expected);
    EXPECT_EQ(j->journal_id(), kTestJournalId);
    EXPECT_EQ(j->report().truncated_bytes, 0u);
  }
  const JournalSession& a = before.sessions.at("session-a");
  EXPECT_EQ(a.next_seq, 3u);
  EXPECT_EQ(a.released_below, 1u);
  EXPECT_EQ(a.ops.at(2).payload, "request-2");
  EXPECT_EQ(a.ops.at(2).incarnation, 1u);
  EXPECT_EQ(before.sessions.at("session-b").next_seq, 8u);
}

TEST(Journal, OpsRecordTheIncarnationThatWroteThem) {
  TempDir dir;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    JournalOp op = Op(kPrepared, "req");
    op.incarnation = 77;  // ignored: the journal knows its incarnation
    MustAppend(*j, "s", 1, op);
    MustCommit(*j);
    EXPECT_EQ(j->state().sessions.at("s").ops.at(1).incarnation, 1u);
  }
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  JournalOp done = Op(kCompleted, "resp");
  done.status = ErrorCode::kHandlerFailed;
  MustAppend(*j, "s", 1, done);
  MustCommit(*j);
  j.reset();
  j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  const JournalOp& got = j->state().sessions.at("s").ops.at(1);
  EXPECT_EQ(got.incarnation, 2u);
  EXPECT_EQ(got.state, kCompleted);
  EXPECT_EQ(got.status, ErrorCode::kHandlerFailed);
  EXPECT_EQ(got.payload, "resp");
}

TEST(Journal, UncommittedRecordsAreNotReplayed) {
  TempDir dir;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "s", 1, Op(kPrepared, "committed"));
    MustCommit(*j);
    MustAppend(*j, "s", 2, Op(kPrepared, "never committed"));
    EXPECT_EQ(j->pending_records(), 1u);
    EXPECT_TRUE(j->state().sessions.at("s").ops.contains(2));
  }
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  const JournalSession& s = j->state().sessions.at("s");
  EXPECT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.next_seq, 2u);
}

TEST(Journal, EmptyPayloadKeepsTheStoredPayload) {
  TempDir dir;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "s", 1, Op(kPrepared, "the request"));
    MustAppend(*j, "s", 1, Op(kSent, ""));
    const JournalOp& op = j->state().sessions.at("s").ops.at(1);
    EXPECT_EQ(op.state, kSent);
    EXPECT_EQ(op.payload, "the request");
    MustAppend(*j, "s", 1, Op(kCompleted, "the response"));
    MustCommit(*j);
    EXPECT_EQ(j->state().sessions.at("s").ops.at(1).payload, "the response");
  }
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  const JournalOp& op = j->state().sessions.at("s").ops.at(1);
  EXPECT_EQ(op.state, kCompleted);
  EXPECT_EQ(op.payload, "the response");
}

TEST(Journal, NextSeqIsOnePastTheHighestSeqEverRecorded) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  MustAppend(*j, "s", 5, Op(kPrepared, "x"));
  MustAppend(*j, "s", 3, Op(kPrepared, "y"));
  EXPECT_EQ(j->state().sessions.at("s").next_seq, 6u);
  ASSERT_TRUE(j->AppendRelease("s", 1, {5}).ok());
  EXPECT_EQ(j->state().sessions.at("s").next_seq, 6u);
}

// ---------------------------------------------------------------------------
// Release.

TEST(Journal, ClientReleaseForgetsOpsBelowTheWatermarkAndListedSeqs) {
  TempDir dir;
  JournalState expected;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    for (Seq seq = 1; seq <= 6; ++seq) {
      MustAppend(*j, "s", seq, Op(kCompleted, "resp-" + std::to_string(seq)));
    }
    ASSERT_TRUE(j->AppendRelease("s", 3, {5}).ok());
    MustCommit(*j);
    const JournalSession& s = j->state().sessions.at("s");
    EXPECT_EQ(s.released_below, 3u);
    EXPECT_EQ(s.next_seq, 7u);
    std::vector<Seq> live;
    for (const auto& [seq, op] : s.ops) live.push_back(seq);
    EXPECT_EQ(live, (std::vector<Seq>{3, 4, 6}));
    expected = j->state();
  }
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  // A seq below the watermark is gone for good.
  EXPECT_EQ(j->AppendOp("s", 2, Op(kPrepared, "late")).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Journal, ServerReleaseLeavesTombstonesWithoutPayload) {
  TempDir dir;
  JournalState expected;
  {
    auto j = OpenJournal(ServerOptions(dir.path()));
    ASSERT_NE(j, nullptr);
    for (Seq seq = 1; seq <= 5; ++seq) {
      MustAppend(*j, "client-s", seq, Op(kReceived, "req"));
      MustAppend(*j, "client-s", seq, Op(kExecuted, "resp"));
    }
    ASSERT_TRUE(j->AppendRelease("client-s", 2, {4}).ok());
    MustCommit(*j);
    const JournalSession& s = j->state().sessions.at("client-s");
    EXPECT_EQ(s.released_below, 2u);
    EXPECT_FALSE(s.ops.contains(1));
    ASSERT_TRUE(s.ops.contains(4));
    EXPECT_EQ(s.ops.at(4).state, kReleased);
    EXPECT_TRUE(s.ops.at(4).payload.empty());
    EXPECT_EQ(s.ops.at(4).service, "billing");
    EXPECT_EQ(s.ops.at(3).payload, "resp");
    expected = j->state();
  }
  auto j = OpenJournal(ServerOptions(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
}

TEST(Journal, ReleaseOfUnknownSeqsAndSessionsOnlyMovesTheWatermark) {
  TempDir dir;
  auto j = OpenJournal(ServerOptions(dir.path()));
  ASSERT_NE(j, nullptr);
  ASSERT_TRUE(j->AppendRelease("fresh", 10, {3, 12}).ok());
  const JournalSession& s = j->state().sessions.at("fresh");
  EXPECT_EQ(s.released_below, 10u);
  // Seqs below a watermark can never be issued again.
  EXPECT_EQ(s.next_seq, 10u);
  EXPECT_TRUE(s.ops.empty());
  // A lower watermark never lowers it.
  ASSERT_TRUE(j->AppendRelease("fresh", 4).ok());
  EXPECT_EQ(j->state().sessions.at("fresh").released_below, 10u);
}

// ---------------------------------------------------------------------------
// Durability levels.

TEST(Journal, MemoryLevelWritesNothingAndStartsOverEachOpen) {
  TempDir dir;
  JournalOptions o = Options(dir.Sub("never-created"));
  o.durability = Durability::kMemory;
  o.new_journal_id = nullptr;
  JournalId first_id = 0;
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->incarnation(), 1u);
    EXPECT_NE(j->journal_id(), 0u);
    first_id = j->journal_id();
    MustAppend(*j, "s", 1, Op(kPrepared, "req"));
    ASSERT_TRUE(j->AppendRelease("s", 1, {1}).ok());
    MustAppend(*j, "s", 2, Op(kPrepared, "req"));
    EXPECT_EQ(j->pending_records(), 0u);
    MustCommit(*j);
    EXPECT_TRUE(j->Compact().ok());
    EXPECT_EQ(j->disk_bytes(), 0u);
    EXPECT_FALSE(j->NeedsCompaction());
    EXPECT_EQ(j->state().sessions.at("s").ops.size(), 1u);
  }
  EXPECT_FALSE(fs::exists(dir.Sub("never-created")));
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->incarnation(), 1u);
  EXPECT_TRUE(j->state().sessions.empty());
  EXPECT_NE(j->journal_id(), first_id);  // 2^-64 chance of a false failure
  // Two memory journals of the same "dir" do not lock each other.
  auto other = OpenJournal(o);
  EXPECT_NE(other, nullptr);
}

TEST(Journal, SyncLevelRoundTrip) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.durability = Durability::kSync;
  o.segment_bytes = 256;
  JournalState expected;
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->durability(), Durability::kSync);
    for (Seq seq = 1; seq <= 20; ++seq) {
      MustAppend(*j, "s", seq, Op(kPrepared, std::string(40, 'p')));
      if (seq % 4 == 0) MustCommit(*j);
    }
    ASSERT_TRUE(j->AppendRelease("s", 10).ok());
    MustCommit(*j);
    ASSERT_TRUE(j->Compact().ok());
    MustAppend(*j, "s", 21, Op(kPrepared, "after compaction"));
    MustCommit(*j);
    expected = j->state();
  }
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  EXPECT_EQ(j->incarnation(), 2u);
}

// ---------------------------------------------------------------------------
// Segments and compaction.

TEST(Journal, SegmentsRollAndReplayInOrder) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.segment_bytes = 1024;
  JournalState expected;
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    for (Seq seq = 1; seq <= 300; ++seq) {
      MustAppend(*j, "s", seq, Op(kPrepared, "payload-" + std::to_string(seq)));
      if (seq % 3 == 0) MustAppend(*j, "s", seq - 1, Op(kCompleted, "r"));
      if (seq % 10 == 0) {
        ASSERT_TRUE(j->AppendRelease("s", seq - 5, {seq - 1}).ok());
        MustCommit(*j);
      }
    }
    MustCommit(*j);
    expected = j->state();
  }
  std::vector<std::string> segments = SegmentFiles(dir.path());
  ASSERT_GT(segments.size(), 10u);
  for (const std::string& name : segments) {
    EXPECT_LE(fs::file_size(dir.Sub(name)), 1024u) << name;
  }
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  EXPECT_EQ(j->report().segments, segments.size());
  EXPECT_EQ(j->report().truncated_bytes, 0u);
  std::size_t total = 0;
  for (const std::string& name : SegmentFiles(dir.path())) {
    total += fs::file_size(dir.Sub(name));
  }
  EXPECT_EQ(j->disk_bytes(), total);
}

TEST(Journal, DigestSurvivesReplayCompactionAndRelease) {
  TempDir dir;
  JournalOptions o = ServerOptions(dir.path());
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "alice", 1, Op(kReceived, "request"));
    JournalOp executed = Op(kExecuted, "response", "");
    executed.digest = 0x0123456789abcdefULL;
    MustAppend(*j, "alice", 1, std::move(executed));
    JournalOp without = Op(kExecuted, "", "");  // an empty response, no digest
    MustAppend(*j, "alice", 2, std::move(without));
    MustCommit(*j);
  }
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  const JournalSession& s = j->state().sessions.at("alice");
  EXPECT_EQ(s.ops.at(1).digest, 0x0123456789abcdefULL);
  EXPECT_EQ(s.ops.at(1).payload, "response");
  EXPECT_FALSE(s.ops.at(2).digest.has_value());
  // Compaction rewrites the live records with their digests.
  const JournalState before = j->state();
  ASSERT_TRUE(j->Compact().ok());
  ASSERT_TRUE(j->AppendRelease("alice", 1, {1}).ok());
  MustCommit(*j);
  j.reset();
  j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  const JournalOp& tombstone = j->state().sessions.at("alice").ops.at(1);
  EXPECT_EQ(tombstone.state, kReleased);
  EXPECT_EQ(tombstone.digest, before.sessions.at("alice").ops.at(1).digest);
}

TEST(Journal, CompactionKeepsExactlyTheLiveState) {
  TempDir dir;
  JournalOptions o = ServerOptions(dir.path());
  o.segment_bytes = 4096;
  o.compact_min_bytes = 8192;
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  const std::string payload(64, 'x');
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < 20; ++k) {
      auto seq = static_cast<Seq>(round * 20 + k + 1);
      std::string session = "sess-" + std::to_string(k % 3);
      MustAppend(*j, session, seq, Op(kReceived, payload));
      MustAppend(*j, session, seq, Op(kExecuted, payload));
    }
    for (int k = 0; k < 3; ++k) {
      std::string session = "sess-" + std::to_string(k);
      auto below = static_cast<Seq>(round * 20 + 1);
      ASSERT_TRUE(j->AppendRelease(session, below, {below + 3}).ok());
    }
    MustCommit(*j);
  }
  EXPECT_TRUE(j->NeedsCompaction());
  const JournalState before = j->state();
  const std::size_t disk_before = j->disk_bytes();
  ASSERT_TRUE(j->Compact().ok());
  EXPECT_EQ(j->state(), before);
  EXPECT_FALSE(j->NeedsCompaction());
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 1u);
  // About 20 live ops of ~100 encoded bytes remain, plus a few tombstones.
  EXPECT_LT(j->disk_bytes(), 4096u);
  EXPECT_LT(j->disk_bytes() * 20, disk_before);
  const Incarnation incarnation = j->incarnation();
  j.reset();

  j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), before);
  EXPECT_EQ(j->incarnation(), incarnation + 1);
  EXPECT_EQ(j->journal_id(), kTestJournalId);
  EXPECT_EQ(j->report().segments, 1u);
}

TEST(Journal, AppendsAfterCompactionSurviveReopen) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  MustAppend(*j, "s", 1, Op(kPrepared, "one"));
  MustAppend(*j, "s", 2, Op(kPrepared, "two"));
  // Compact() commits what is pending first.
  ASSERT_TRUE(j->Compact().ok());
  EXPECT_EQ(j->pending_records(), 0u);
  MustAppend(*j, "s", 3, Op(kPrepared, "three"));
  ASSERT_TRUE(j->AppendRelease("s", 2).ok());
  MustCommit(*j);
  ASSERT_TRUE(j->Compact().ok());
  MustAppend(*j, "s", 4, Op(kPrepared, "four"));
  MustCommit(*j);
  const JournalState expected = j->state();
  j.reset();
  j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  EXPECT_EQ(j->state().sessions.at("s").ops.size(), 3u);
}

TEST(Journal, CompactionInterruptedBeforeRenameLeavesTheOldSegments) {
  TempDir dir;
  JournalState expected;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "s", 1, Op(kPrepared, "one"));
    MustCommit(*j);
    expected = j->state();
  }
  // What a crash mid-compaction leaves: a half-written temporary segment.
  WriteFile(dir.Sub("seg-000000000002.rjl.tmp"), "RJJOURNL\x01\0\0\0garbage");
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  EXPECT_FALSE(fs::exists(dir.Sub("seg-000000000002.rjl.tmp")));
  EXPECT_EQ(j->report().truncated_bytes, 0u);
}

TEST(Journal, CompactionInterruptedBeforeDeletingOldSegmentsReplaysSnapshot) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.segment_bytes = 512;
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  for (Seq seq = 1; seq <= 40; ++seq) {
    MustAppend(*j, "s", seq, Op(kPrepared, std::string(30, 'a')));
    MustCommit(*j);
  }
  ASSERT_TRUE(j->AppendRelease("s", 35, {36}).ok());
  MustCommit(*j);
  // Keep copies of the old segments, compact, then put them back: the
  // directory now looks like a crash right after the snapshot's rename.
  std::vector<std::pair<std::string, std::string>> old;
  for (const std::string& name : SegmentFiles(dir.path())) {
    old.emplace_back(name, ReadFile(dir.Sub(name)));
  }
  ASSERT_GT(old.size(), 2u);
  ASSERT_TRUE(j->Compact().ok());
  const JournalState expected = j->state();
  j.reset();
  for (const auto& [name, bytes] : old) WriteFile(dir.Sub(name), bytes);
  ASSERT_EQ(SegmentFiles(dir.path()).size(), old.size() + 1);

  j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
  EXPECT_EQ(j->report().segments, 1u);
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 1u);
}

TEST(Journal, SnapshotResetsStateEvenAfterCorruptSupersededSegments) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.segment_bytes = 256;
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  for (Seq seq = 1; seq <= 10; ++seq) {
    MustAppend(*j, "s", seq, Op(kPrepared, std::string(50, 'b')));
    MustCommit(*j);
  }
  std::string first = SegmentFiles(dir.path()).front();
  std::string first_bytes = ReadFile(dir.Sub(first));
  ASSERT_TRUE(j->Compact().ok());
  const JournalState expected = j->state();
  j.reset();
  // A superseded segment is never read, so its damage does not matter.
  first_bytes[first_bytes.size() - 3] ^= 0x10;
  WriteFile(dir.Sub(first), first_bytes);
  j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), expected);
}

TEST(Journal, NeedsCompactionWhenDiskOutgrowsFourTimesLiveState) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.compact_min_bytes = 10000;
  auto j = OpenJournal(o);
  ASSERT_NE(j, nullptr);
  // A growing live state never needs compaction...
  Seq seq = 1;
  while (j->disk_bytes() < 30000) {
    MustAppend(*j, "s", seq, Op(kPrepared, std::string(100, 'q')));
    MustCommit(*j);
    ++seq;
  }
  EXPECT_FALSE(j->NeedsCompaction());
  // ...but once most of it is released, the history dominates.
  ASSERT_TRUE(j->AppendRelease("s", seq - 2).ok());
  MustCommit(*j);
  EXPECT_TRUE(j->NeedsCompaction());
  ASSERT_TRUE(j->Compact().ok());
  EXPECT_FALSE(j->NeedsCompaction());
}

// ---------------------------------------------------------------------------
// The directory lock.

TEST(Journal, SecondOpenInTheSameProcessIsLocked) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  Result<std::unique_ptr<Journal>> second = Journal::Open(Options(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kJournalLocked);
  EXPECT_NE(second.status().message().find(dir.path()), std::string::npos)
      << second.status().message();
  j.reset();
  EXPECT_NE(OpenJournal(Options(dir.path())), nullptr);
}

TEST(Journal, SecondOpenFromAnotherProcessIsLocked) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir.path()));
    ::_exit(!r.ok() && r.status().code() == ErrorCode::kJournalLocked ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child did not see kJournalLocked";
}

// ---------------------------------------------------------------------------
// Errors of Open and of the append calls.

TEST(Journal, DirectoryThatCannotBeCreatedIsIoError) {
  TempDir dir;
  WriteFile(dir.Sub("plain-file"), "not a directory");
  Result<std::unique_ptr<Journal>> r =
      Journal::Open(Options(dir.Sub("plain-file/journal")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
  EXPECT_NE(r.status().message().find("plain-file/journal"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(OpenError(Options(dir.Sub("plain-file"))), ErrorCode::kIoError);
}

TEST(Journal, LockFileThatCannotBeOpenedIsIoError) {
  TempDir dir;
  fs::create_directory(dir.Sub("LOCK"));
  Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir.path()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
  EXPECT_NE(r.status().message().find("LOCK"), std::string::npos);
}

TEST(Journal, SegmentThatCannotBeReadIsIoError) {
  TempDir dir;
  fs::create_directory(dir.Sub("seg-000000000001.rjl"));
  EXPECT_EQ(OpenError(Options(dir.path())), ErrorCode::kIoError);
}

TEST(Journal, WrongMagicIsCorrupt) {
  TempDir dir;
  { ASSERT_NE(OpenJournal(Options(dir.path())), nullptr); }
  std::string path = dir.Sub("seg-000000000001.rjl");
  std::string bytes = ReadFile(path);
  bytes[0] = 'X';
  WriteFile(path, bytes);
  EXPECT_EQ(OpenError(Options(dir.path())), ErrorCode::kCorrupt);
}

TEST(Journal, FormatVersionOneSegmentsAreStillRead) {
  TempDir dir;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "alice", 1, Op(kPrepared, "request"));
    MustCommit(*j);
  }
  std::string path = dir.Sub("seg-000000000001.rjl");
  std::string bytes = ReadFile(path);
  ASSERT_EQ(bytes[8], 2);
  bytes[8] = 1;  // as written before op records could carry a digest
  WriteFile(path, bytes);
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state().sessions.at("alice").ops.at(1).payload, "request");
}

TEST(Journal, NewerFormatVersionIsRefused) {
  TempDir dir;
  { ASSERT_NE(OpenJournal(Options(dir.path())), nullptr); }
  std::string path = dir.Sub("seg-000000000001.rjl");
  std::string bytes = ReadFile(path);
  bytes[8] = 3;  // u32 little-endian format version follows the magic
  WriteFile(path, bytes);
  Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir.path()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kJournalVersion);
  EXPECT_NE(r.status().message().find("version 3"), std::string::npos);
  // Refusing must not have touched the file.
  bytes[8] = 3;
  EXPECT_EQ(ReadFile(path), bytes);
}

TEST(Journal, OtherOwnerIsCorruptWithAClearMessage) {
  TempDir dir;
  { ASSERT_NE(OpenJournal(ServerOptions(dir.path())), nullptr); }
  JournalOptions o = ServerOptions(dir.path());
  o.owner_id = "server-2";
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("journal in " + dir.path() +
                                      " belongs to server 'server-1', not "
                                      "'server-2'"),
            std::string::npos)
      << r.status().message();
}

TEST(Journal, OtherRoleIsCorrupt) {
  TempDir dir;
  { ASSERT_NE(OpenJournal(ServerOptions(dir.path())), nullptr); }
  JournalOptions o = Options(dir.path(), JournalRole::kClient, "server-1");
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("belongs to server 'server-1', not "
                                      "client 'server-1'"),
            std::string::npos)
      << r.status().message();
}

TEST(Journal, InvalidOptionsAreRejected) {
  TempDir dir;
  JournalOptions o = Options(dir.path());
  o.owner_id = "";
  EXPECT_EQ(OpenError(o), ErrorCode::kInvalidArgument);
  o.owner_id = "has space";
  EXPECT_EQ(OpenError(o), ErrorCode::kInvalidArgument);
  o = Options("");
  EXPECT_EQ(OpenError(o), ErrorCode::kInvalidArgument);
  o = Options(dir.path());
  o.segment_bytes = 0;
  EXPECT_EQ(OpenError(o), ErrorCode::kInvalidArgument);
  o = Options(dir.path());
  o.role = static_cast<JournalRole>(7);
  EXPECT_EQ(OpenError(o), ErrorCode::kInvalidArgument);
}

TEST(Journal, InvalidAppendsAreRejectedAndLeaveNoRecord) {
  TempDir dir;
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  MustAppend(*j, "s", 1, Op(kPrepared, "ok"));
  ASSERT_TRUE(j->AppendRelease("s", 5).ok());
  MustCommit(*j);
  const JournalState before = j->state();
  const std::size_t disk = j->disk_bytes();

  auto invalid = [](const Status& s) {
    return s.code() == ErrorCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid(j->AppendOp("", 6, Op(kPrepared, "x"))));
  EXPECT_TRUE(invalid(j->AppendOp("bad id", 6, Op(kPrepared, "x"))));
  EXPECT_TRUE(
      invalid(j->AppendOp(std::string(200, 'a'), 6, Op(kPrepared, ""))));
  EXPECT_TRUE(invalid(j->AppendOp("s", 0, Op(kPrepared, "x"))));
  EXPECT_TRUE(invalid(j->AppendOp("s", 4, Op(kPrepared, "below watermark"))));
  EXPECT_TRUE(invalid(j->AppendOp("s", 6, Op(0, "state none"))));
  EXPECT_TRUE(invalid(j->AppendOp("s", 6, Op(4, "unknown state"))));
  EXPECT_TRUE(invalid(j->AppendOp("s", 6, Op(kPrepared, "x", "bad service"))));
  EXPECT_TRUE(invalid(j->AppendRelease("", 3)));
  EXPECT_TRUE(invalid(j->AppendRelease("s", 3, {0})));

  EXPECT_EQ(j->pending_records(), 0u);
  EXPECT_EQ(j->state(), before);
  MustCommit(*j);
  EXPECT_EQ(j->disk_bytes(), disk);
  // An op without a service is allowed: later state changes need not repeat
  // it.
  MustAppend(*j, "s", 6, Op(kPrepared, "x", ""));
}

TEST(Journal, FailedWriteMakesTheJournalUnusable) {
  TempDir dir;
  {
    auto j = OpenJournal(Options(dir.path()));
    ASSERT_NE(j, nullptr);
    MustAppend(*j, "s", 1, Op(kPrepared, "durable"));
    MustCommit(*j);
  }
  // In a child, cap the file size so the next commit fails part-way; the
  // cap and the ignored SIGXFSZ must not leak into the test process.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    auto j = Journal::Open(Options(dir.path()));
    if (!j.ok()) ::_exit(10);
    rlimit limit{};
    limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(
        fs::file_size(dir.Sub("seg-000000000001.rjl")) + 100);
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(11);
    if (!(*j)->AppendOp("s", 2, Op(kPrepared, std::string(1000, 'z'))).ok()) {
      ::_exit(12);
    }
    if ((*j)->Commit().code() != ErrorCode::kIoError) ::_exit(13);
    if ((*j)->AppendOp("s", 3, Op(kPrepared, "x")).code() !=
        ErrorCode::kIoError) {
      ::_exit(14);
    }
    if ((*j)->AppendRelease("s", 1).code() != ErrorCode::kIoError) ::_exit(15);
    if ((*j)->Commit().code() != ErrorCode::kIoError) ::_exit(16);
    if ((*j)->Compact().code() != ErrorCode::kIoError) ::_exit(17);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // The partial record the failed write left behind is cut off on open.
  auto j = OpenJournal(Options(dir.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->report().truncated_bytes, 100u);
  const JournalSession& s = j->state().sessions.at("s");
  EXPECT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops.at(1).payload, "durable");
}

}  // namespace
}  // namespace rejoin

namespace rejoin {
namespace {

// The response states replace the stored request even when the response is
// empty; every other state keeps it. Checked live and after replay.
TEST(JournalPayload, EmptyResponseReplacesTheStoredRequest) {
  char tmpl[] = "/tmp/rejoin-journal-payload-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  for (JournalRole role : {JournalRole::kClient, JournalRole::kServer}) {
    const std::string sub = dir + (role == JournalRole::kClient ? "/c" : "/s");
    const std::uint8_t request_state =
        role == JournalRole::kClient
            ? static_cast<std::uint8_t>(ClientOpState::kPrepared)
            : static_cast<std::uint8_t>(ServerOpState::kReceived);
    const std::uint8_t response_state =
        role == JournalRole::kClient
            ? static_cast<std::uint8_t>(ClientOpState::kCompleted)
            : static_cast<std::uint8_t>(ServerOpState::kExecuted);
    JournalOptions o;
    o.dir = sub;
    o.role = role;
    o.owner_id = "owner";
    {
      auto j = Journal::Open(o);
      ASSERT_TRUE(j.ok()) << j.status().ToString();
      JournalOp op;
      op.state = request_state;
      op.service = "svc";
      op.payload = "the request";
      ASSERT_TRUE((*j)->AppendOp("s", 1, op).ok());
      JournalOp done;
      done.state = response_state;
      done.service = "svc";
      ASSERT_TRUE((*j)->AppendOp("s", 1, done).ok());
      ASSERT_TRUE((*j)->Commit().ok());
      EXPECT_EQ((*j)->state().sessions.at("s").ops.at(1).payload, "");
    }
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_EQ((*j)->state().sessions.at("s").ops.at(1).payload, "");
    EXPECT_EQ((*j)->state().sessions.at("s").ops.at(1).state, response_state);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rejoin
