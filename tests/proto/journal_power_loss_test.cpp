// Power loss, torn writes and full disks, through the in-memory FaultEnv
// (support/fault_env.h): what each durability level keeps (JOURNAL.md §6
// and §8). Every case replays a seeded workload, stops the machine at a
// chosen change, drops what was not durable, reopens, and requires the
// replayed state to be exactly the state after some prefix of the appended
// records: never a record from after a dropped one, never a response for a
// seq that was not executed. `sync` keeps every committed record, `process`
// every record up to its last compaction, `memory` nothing. REJOIN_SOAK_SCALE
// multiplies the iteration counts.
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "rejoin/proto/journal.h"
#include "support/fault_env.h"
#include "support/journal_workload.h"

namespace rejoin {
namespace {

using testing::CommitAllButTheLastBatch;
using testing::FaultEnv;
using testing::MakeWorkload;
using testing::Outcome;
using testing::PowerLossMode;
using testing::PrefixStates;
using testing::RecordEnds;
using testing::RunUntilFailure;
using testing::Step;

constexpr char kDir[] = "/data/journal";
constexpr JournalId kJournalId = 0x5eed5eed5eed5eedu;

int SoakScale() {
  const char* s = std::getenv("REJOIN_SOAK_SCALE");
  int scale = s != nullptr ? std::atoi(s) : 1;
  return scale > 0 ? scale : 1;
}

JournalOptions Options(FaultEnv* env, Durability durability,
                       JournalRole role = JournalRole::kServer) {
  JournalOptions o;
  o.dir = kDir;
  o.durability = durability;
  o.role = role;
  o.owner_id = role == JournalRole::kServer ? "server-1" : "client-1";
  o.new_journal_id = [] { return kJournalId; };
  o.env = env;
  // Small segments, so that workloads roll over several of them.
  o.segment_bytes = 1024;
  return o;
}

// Reopens after the loss and requires the state of some prefix k with
// lo <= k <= hi. Returns k (or -1), and the journal's report via *report.
int ExpectPrefix(const JournalOptions& o,
                 const std::vector<JournalState>& states, std::size_t lo,
                 std::size_t hi, const std::string& trace,
                 ReplayReport* report = nullptr) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  if (!r.ok()) {
    ADD_FAILURE() << trace << ": reopen failed: " << r.status().ToString();
    return -1;
  }
  std::unique_ptr<Journal> j = std::move(r).value();
  if (report != nullptr) *report = j->report();
  int found = -1;
  for (std::size_t k = lo; k <= hi && k < states.size(); ++k) {
    if (states[k] == j->state()) found = static_cast<int>(k);
  }
  if (found < 0) {
    ADD_FAILURE() << trace << ": the replayed state is not the state after "
                  << "any prefix of " << lo << ".." << hi << " records";
    return -1;
  }
  // A journal that forgot everything says so with a new id; one that kept
  // its open record keeps its id and counts on from its incarnation.
  if (j->report().created) {
    EXPECT_TRUE(states[static_cast<std::size_t>(found)] == states[0]) << trace;
  } else {
    EXPECT_EQ(j->journal_id(), kJournalId) << trace;
    EXPECT_GE(j->incarnation(), Incarnation{2}) << trace;
  }
  // The recovered journal takes new records and commits them.
  Status st = j->AppendOp("session-9", 1, JournalOp{1, "billing", "x"});
  EXPECT_TRUE(st.ok()) << trace << ": " << st.ToString();
  st = j->Commit();
  EXPECT_TRUE(st.ok()) << trace << ": " << st.ToString();
  return found;
}

std::string Trace(std::uint64_t seed, std::uint64_t cut, PowerLossMode mode,
                  std::size_t torn) {
  return "seed " + std::to_string(seed) + ", machine stopped at change " +
         std::to_string(cut) + ", power-loss mode " +
         std::to_string(static_cast<int>(mode)) + ", torn bytes " +
         std::to_string(torn);
}

// Counts the changes a whole workload makes, so cut points can range over
// all of them.
std::uint64_t CountChanges(Durability durability, JournalRole role,
                           const std::vector<Step>& steps) {
  FaultEnv env;
  Outcome out = RunUntilFailure(Options(&env, durability, role), steps);
  EXPECT_TRUE(out.error.ok()) << out.error.ToString();
  return env.mutations();
}

// ---------------------------------------------------------------------------
// Durability levels under power loss.

TEST(JournalPowerLoss, SyncLevelLosesNothingCommitted) {
  const int iterations = 300 * SoakScale();
  int torn_tails = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seed = 1000 + static_cast<std::uint64_t>(i);
    const JournalRole role =
        i % 2 == 0 ? JournalRole::kServer : JournalRole::kClient;
    const auto steps = MakeWorkload(role, seed, 12, 5);
    const auto states = PrefixStates(role, steps);
    const std::uint64_t changes = CountChanges(Durability::kSync, role, steps);
    std::mt19937_64 rng(seed);
    const std::uint64_t cut = rng() % (changes + 1);
    const auto mode = static_cast<PowerLossMode>(i % 3);
    const std::size_t torn = rng() % 400;
    // Whether directory changes that were never synced survive too.
    const bool keep_entries = (i / 3) % 2 == 1;
    const std::string trace = Trace(seed, cut, mode, torn) +
                              (keep_entries ? ", unsynced entries kept" : "");

    FaultEnv env(seed);
    const JournalOptions o = Options(&env, Durability::kSync, role);
    env.FailFrom(cut, EIO);
    const Outcome out = RunUntilFailure(o, steps);
    env.PowerLoss(mode, torn, keep_entries);
    ReplayReport report;
    ExpectPrefix(o, states, out.committed, out.appended, trace, &report);
    if (report.truncated_bytes > 0) ++torn_tails;
  }
  // Some of those losses tore a write, and it was cut as a torn tail.
  EXPECT_GT(torn_tails, 0);
}

TEST(JournalPowerLoss, ProcessLevelLosesOnlyWhatFollowsItsLastCompaction) {
  const int iterations = 300 * SoakScale();
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seed = 2000 + static_cast<std::uint64_t>(i);
    const JournalRole role =
        i % 2 == 0 ? JournalRole::kClient : JournalRole::kServer;
    const auto steps = MakeWorkload(role, seed, 12, 4);
    const auto states = PrefixStates(role, steps);
    const std::uint64_t changes =
        CountChanges(Durability::kProcess, role, steps);
    std::mt19937_64 rng(seed);
    const std::uint64_t cut = rng() % (changes + 1);
    const auto mode = static_cast<PowerLossMode>(i % 3);
    const std::size_t torn = rng() % 400;
    const std::string trace = Trace(seed, cut, mode, torn);

    FaultEnv env(seed);
    const JournalOptions o = Options(&env, Durability::kProcess, role);
    env.FailFrom(cut, EIO);
    const Outcome out = RunUntilFailure(o, steps);
    env.PowerLoss(mode, torn);
    // Only compaction syncs in this level: what it snapshotted stays.
    ExpectPrefix(o, states, out.compacted, out.appended, trace);
  }
}

// A file system that keeps a renamed segment whose data it lost leaves an
// empty, zero-filled or short segment, or one with a torn tail: in one
// segment all of them are torn tails (JOURNAL.md §4 "Damage", §6).
TEST(JournalPowerLoss, ProcessLevelLossOfDataUnderKeptEntriesIsATornTail) {
  const int iterations = 200 * SoakScale();
  int cut_segments = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seed = 5000 + static_cast<std::uint64_t>(i);
    const auto steps = MakeWorkload(JournalRole::kServer, seed, 10, 0);
    const auto states = PrefixStates(JournalRole::kServer, steps);
    std::mt19937_64 rng(seed);
    const auto mode = static_cast<PowerLossMode>(i % 3);
    const std::size_t torn = rng() % 600;
    FaultEnv env(seed);
    JournalOptions o = Options(&env, Durability::kProcess);
    o.segment_bytes = 1 << 20;
    const Outcome out = RunUntilFailure(o, steps);
    ASSERT_TRUE(out.error.ok()) << out.error.ToString();
    env.PowerLoss(mode, torn, /*keep_unsynced_entries=*/true);
    ReplayReport report;
    ExpectPrefix(o, states, 0, out.appended,
                 "seed " + std::to_string(seed) + ", mode " +
                     std::to_string(i % 3) + ", torn " + std::to_string(torn),
                 &report);
    if (report.truncated_offset == 0 && !report.truncated_segment.empty()) {
      ++cut_segments;
    }
  }
  // Some losses left a segment without a whole header, removed whole.
  EXPECT_GT(cut_segments, 0);
}

TEST(JournalPowerLoss, ProcessLevelKeepsEveryCommitWhenOnlyTheProcessDies) {
  const int iterations = 200 * SoakScale();
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seed = 3000 + static_cast<std::uint64_t>(i);
    const auto steps = MakeWorkload(JournalRole::kClient, seed, 12, 4);
    const auto states = PrefixStates(JournalRole::kClient, steps);
    const std::uint64_t changes =
        CountChanges(Durability::kProcess, JournalRole::kClient, steps);
    std::mt19937_64 rng(seed);
    const std::uint64_t cut = rng() % (changes + 1);

    FaultEnv env(seed);
    const JournalOptions o =
        Options(&env, Durability::kProcess, JournalRole::kClient);
    env.FailFrom(cut, EIO);
    const Outcome out = RunUntilFailure(o, steps);
    env.ClearFaults();  // no power loss: the OS keeps every write
    ExpectPrefix(o, states, out.committed, out.appended,
                 "seed " + std::to_string(seed) + ", stopped at change " +
                     std::to_string(cut));
  }
}

TEST(JournalPowerLoss, MemoryLevelTouchesNoFileAndReopensEmpty) {
  FaultEnv env;
  const JournalOptions o = Options(&env, Durability::kMemory);
  const auto steps = MakeWorkload(JournalRole::kServer, 7, 10, 3);
  const Outcome out = RunUntilFailure(o, steps);
  ASSERT_TRUE(out.error.ok()) << out.error.ToString();
  EXPECT_GT(out.appended, 0u);
  EXPECT_EQ(env.FileCount(), 0u);
  EXPECT_EQ(env.mutations(), 0u);
  env.PowerLoss(PowerLossMode::kDropUnsynced);
  auto j = std::move(Journal::Open(o)).value();
  EXPECT_TRUE(j->state().sessions.empty());
  EXPECT_EQ(j->incarnation(), Incarnation{1});
  EXPECT_TRUE(j->report().created);
}

// ---------------------------------------------------------------------------
// Compaction stopped at every one of its changes.

TEST(JournalPowerLoss, CompactionStoppedAtEveryStepKeepsTheCommittedState) {
  for (Durability level : {Durability::kSync, Durability::kProcess}) {
    const std::uint64_t seed = 4000 + static_cast<std::uint64_t>(level);
    // Six commits, a compaction, two more commits.
    auto steps = MakeWorkload(JournalRole::kServer, seed, 8, 0);
    std::size_t commits = 0, at = 0;
    for (; at < steps.size(); ++at) {
      if (steps[at].kind == Step::Kind::kCommit && ++commits == 6) break;
    }
    Step compact;
    compact.kind = Step::Kind::kCompact;
    steps.insert(steps.begin() + static_cast<std::ptrdiff_t>(at + 1), compact);
    const auto states = PrefixStates(JournalRole::kServer, steps);
    const std::vector<Step> before(
        steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(at + 1));
    const std::vector<Step> through(
        steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(at + 2));
    const std::uint64_t first =
        CountChanges(level, JournalRole::kServer, before);
    const std::uint64_t last =
        CountChanges(level, JournalRole::kServer, through);
    ASSERT_GT(last, first + 4) << "compaction makes several changes";

    for (std::uint64_t cut = first; cut <= last; ++cut) {
      for (int m = 0; m < 4; ++m) {
        const bool power_loss = m < 3;
        const auto mode = static_cast<PowerLossMode>(m % 3);
        const std::string trace = std::string(DurabilityName(level)) + ", " +
                                  Trace(seed, cut, mode, 40) +
                                  (power_loss ? "" : " (no power loss)");
        FaultEnv env(seed);
        const JournalOptions o = Options(&env, level);
        env.FailFrom(cut, EIO);
        const Outcome out = RunUntilFailure(o, steps);
        ASSERT_FALSE(out.error.ok()) << trace;
        if (power_loss) {
          env.PowerLoss(mode, 40);
        } else {
          env.ClearFaults();
        }
        // A crash of the process keeps every commit in both levels; a
        // power loss keeps them in sync, and in process whatever a
        // finished compaction snapshotted.
        const std::size_t lo = level == Durability::kSync || !power_loss
                                   ? out.committed
                                   : out.compacted;
        ExpectPrefix(o, states, lo, out.appended, trace);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Torn writes and failed writes.

// The bytes the last commit of `steps` writes, after the others (one
// segment; its sync is made to fail so the bytes stay as written).
std::string LastBatchBytes(JournalRole role, const std::vector<Step>& steps) {
  const std::string segment = std::string(kDir) + "/seg-000000000001.rjl";
  FaultEnv probe;
  JournalOptions o = Options(&probe, Durability::kSync, role);
  o.segment_bytes = 1 << 20;
  auto j = std::move(Journal::Open(o)).value();
  Status committed = CommitAllButTheLastBatch(*j, steps);
  EXPECT_TRUE(committed.ok()) << committed.ToString();
  const std::size_t synced = probe.Contents(segment).size();
  probe.FailFileSyncs(EIO);
  Status st = j->Commit();
  EXPECT_EQ(st.code(), ErrorCode::kIoError);
  EXPECT_NE(st.message().find("cannot sync"), std::string::npos)
      << st.message();
  return probe.Contents(segment).substr(synced);
}

TEST(JournalPowerLoss, ATornLastWriteIsCutAsATornTailAtEveryByte) {
  const auto steps = MakeWorkload(JournalRole::kServer, 77, 4, 0);
  const auto states = PrefixStates(JournalRole::kServer, steps);
  // Everything but the last commit is committed and synced; the last
  // commit's fdatasync fails, so its batch is the unsynced last write.
  std::size_t last_records = 0;
  for (std::size_t i = steps.size() - 1; i-- > 0;) {
    if (steps[i].kind == Step::Kind::kCommit) break;
    ++last_records;
  }
  const std::string batch = LastBatchBytes(JournalRole::kServer, steps);
  const std::size_t batch_bytes = batch.size();
  ASSERT_GT(batch_bytes, 0u);
  const std::vector<std::size_t> ends = RecordEnds(batch);
  ASSERT_EQ(ends.size(), last_records);
  ASSERT_EQ(ends.back(), batch_bytes);
  const std::size_t committed = states.size() - 1 - last_records;

  for (std::size_t torn = 0; torn <= batch_bytes; ++torn) {
    FaultEnv env;
    JournalOptions o = Options(&env, Durability::kSync);
    o.segment_bytes = 1 << 20;
    {
      auto j = std::move(Journal::Open(o)).value();
      ASSERT_TRUE(CommitAllButTheLastBatch(*j, steps).ok());
      env.FailFileSyncs(EIO);
      ASSERT_FALSE(j->Commit().ok());
    }
    env.PowerLoss(PowerLossMode::kTearLastWrite, torn);
    std::size_t whole = 0;
    while (whole < ends.size() && ends[whole] <= torn) ++whole;
    const std::size_t boundary = whole == 0 ? 0 : ends[whole - 1];
    const std::string trace = "torn after " + std::to_string(torn) + " of " +
                              std::to_string(batch_bytes) + " bytes";

    // Inspect sees the torn tail the open is about to cut.
    Result<JournalInspection> seen = Journal::Inspect(kDir, &env);
    ASSERT_TRUE(seen.ok()) << trace << ": " << seen.status().ToString();
    EXPECT_EQ(seen->integrity, torn == boundary ? JournalIntegrity::kOk
                                                : JournalIntegrity::kTornTail)
        << trace << ": " << seen->detail;
    EXPECT_EQ(seen->torn_bytes, torn - boundary) << trace;

    ReplayReport report;
    const int k = ExpectPrefix(o, states, committed + whole, committed + whole,
                               trace, &report);
    EXPECT_EQ(k, static_cast<int>(committed + whole)) << trace;
    EXPECT_EQ(report.truncated_bytes, torn - boundary) << trace;
  }
}

TEST(JournalPowerLoss, FullDiskMidCommitFailsClearlyAndKeepsTheCommitted) {
  const auto steps = MakeWorkload(JournalRole::kClient, 99, 6, 0);
  const auto states = PrefixStates(JournalRole::kClient, steps);
  const std::size_t total = states.size() - 1;
  // Run up to the last commit, then give the disk `space` more bytes.
  std::size_t last_records = 0;
  for (std::size_t i = steps.size() - 1; i-- > 0;) {
    if (steps[i].kind == Step::Kind::kCommit) break;
    ++last_records;
  }
  const std::size_t committed = total - last_records;
  const std::vector<std::size_t> ends =
      RecordEnds(LastBatchBytes(JournalRole::kClient, steps));
  ASSERT_EQ(ends.size(), last_records);
  const std::size_t stride =
      static_cast<std::size_t>(std::max(1, 7 / SoakScale()));
  for (std::size_t space = 0; space < 1200; space += stride) {
    for (bool power_loss : {false, true}) {
      FaultEnv env;
      JournalOptions o = Options(&env, Durability::kSync, JournalRole::kClient);
      o.segment_bytes = 1 << 20;
      const std::string trace = "ENOSPC after " + std::to_string(space) +
                                " bytes" +
                                (power_loss ? ", then power loss" : "");
      bool failed = false;
      {
        auto j = std::move(Journal::Open(o)).value();
        ASSERT_TRUE(CommitAllButTheLastBatch(*j, steps).ok());
        env.LimitSpace(space);
        Status st = j->Commit();
        failed = !st.ok();
        env.ClearFaults();  // the operator frees space
        if (failed) {
          EXPECT_EQ(st.code(), ErrorCode::kIoError) << trace;
          EXPECT_NE(st.message().find("No space left on device"),
                    std::string::npos)
              << trace << ": " << st.message();
          // Poisoned: nothing more is accepted, even with space again.
          EXPECT_EQ(j->Commit().code(), ErrorCode::kIoError) << trace;
          EXPECT_EQ(j->AppendOp("session-0", 999, JournalOp{1, "", "p"}).code(),
                    ErrorCode::kIoError)
              << trace;
        }
      }
      if (power_loss) env.PowerLoss(PowerLossMode::kDropUnsynced);
      // A failed commit acknowledged nothing: after a power loss exactly
      // the committed records remain; without one, the records that were
      // written whole may remain too, the partial one is a torn tail.
      std::size_t whole = 0;
      while (whole < ends.size() && ends[whole] <= space) ++whole;
      const std::size_t boundary = whole == 0 ? 0 : ends[whole - 1];
      EXPECT_EQ(failed, space < ends.back()) << trace;
      const std::size_t expected = power_loss ? committed : committed + whole;
      const std::size_t lo = failed ? expected : total;
      ReplayReport report;
      EXPECT_EQ(ExpectPrefix(o, states, lo, lo, trace, &report),
                static_cast<int>(lo));
      if (failed && !power_loss) {
        // The record the full disk cut short is a torn tail.
        EXPECT_EQ(report.truncated_bytes, space - boundary) << trace;
      }
    }
  }
}

TEST(JournalPowerLoss, AFailedSyncIsNeverRetriedIntoASuccess) {
  FaultEnv env;
  const JournalOptions o = Options(&env, Durability::kSync);
  auto j = std::move(Journal::Open(o)).value();
  ASSERT_TRUE(j->AppendOp("session-0", 1, JournalOp{1, "billing", "a"}).ok());
  ASSERT_TRUE(j->Commit().ok());
  ASSERT_TRUE(j->AppendOp("session-0", 2, JournalOp{1, "billing", "b"}).ok());
  env.FailFileSyncs(EIO);
  Status st = j->Commit();
  EXPECT_EQ(st.code(), ErrorCode::kIoError);
  EXPECT_NE(st.message().find("Input/output error"), std::string::npos)
      << st.message();
  // The kernel may have dropped the dirty pages with the error: a later
  // sync that succeeds proves nothing, so the journal stays failed.
  env.ClearFaults();
  EXPECT_EQ(j->Commit().code(), ErrorCode::kIoError);
  EXPECT_EQ(j->Compact().code(), ErrorCode::kIoError);
  j.reset();
  env.PowerLoss(PowerLossMode::kDropUnsynced);
  auto reopened = std::move(Journal::Open(o)).value();
  const JournalSession& s = reopened->state().sessions.at("session-0");
  EXPECT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops.at(1).payload, "a");
}

// A process appended a record and died before its sync: the record is in
// the OS cache. The next process reads it and acts on it (replays a
// RESPONSE from it), so its open makes it durable first: a power loss after
// that open takes nothing back that the open had read. The record fills the
// segment, so the open record of the next process starts a new segment
// and its sync does not cover the old one.
TEST(JournalPowerLoss, WhatAnOpenReadSurvivesALaterPowerLoss) {
  FaultEnv env;
  const JournalOptions o = Options(&env, Durability::kSync);
  std::string big;
  {
    auto j = std::move(Journal::Open(o)).value();
    ASSERT_TRUE(j->AppendOp("session-0", 1, JournalOp{1, "billing", "a"}).ok());
    ASSERT_TRUE(j->Commit().ok());
    // Room for this record in the segment, not for an open record after it.
    big.assign(o.segment_bytes - j->disk_bytes() - 48, 'b');
    ASSERT_TRUE(j->AppendOp("session-0", 2, JournalOp{1, "billing", big}).ok());
    env.FailFileSyncs(EIO);  // written, never synced: the process dies
    EXPECT_EQ(j->Commit().code(), ErrorCode::kIoError);
  }
  env.ClearFaults();
  {
    auto j = std::move(Journal::Open(o)).value();
    ASSERT_EQ(j->state().sessions.at("session-0").ops.count(2), 1u);
    EXPECT_GT(j->disk_bytes(), o.segment_bytes);  // a second segment
  }
  env.PowerLoss(PowerLossMode::kDropUnsynced);
  auto j = std::move(Journal::Open(o)).value();
  const JournalSession& s = j->state().sessions.at("session-0");
  ASSERT_EQ(s.ops.count(2), 1u);
  EXPECT_EQ(s.ops.at(2).payload, big);
}

// A compaction that stops at any step (the process dies: that write and
// every one after it, its clean-up included, never happen), then a process
// that opens the journal and commits, then a power loss: what that process
// committed is there, and so is everything committed before the compaction.
// At one step the snapshot is renamed into place but its directory entry is
// not yet durable: the next open must make it durable before appending to
// it.
TEST(JournalPowerLoss, CompactionCutAtAnyStepThenAPowerLossLosesNothing) {
  for (std::uint64_t step = 0; step < 12; ++step) {
    SCOPED_TRACE("compaction cut after " + std::to_string(step) + " writes");
    FaultEnv env;
    JournalOptions o = Options(&env, Durability::kSync);
    o.segment_bytes = 512;
    o.compact_min_bytes = 1024;
    {
      auto j = std::move(Journal::Open(o)).value();
      for (Seq seq = 1; seq <= 40; ++seq) {
        ASSERT_TRUE(
            j->AppendOp("session-0", seq, JournalOp{1, "billing", "p"}).ok());
        ASSERT_TRUE(j->Commit().ok());
        if (seq < 40) {
          ASSERT_TRUE(j->AppendRelease("session-0", seq).ok());
          ASSERT_TRUE(j->Commit().ok());
        }
      }
      ASSERT_TRUE(j->NeedsCompaction());
      env.FailFrom(env.mutations() + step, EIO);
      (void)j->Compact();
    }
    env.ClearFaults();
    Incarnation incarnation = 0;
    {
      auto opened = Journal::Open(o);
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      auto& j = *opened;
      incarnation = j->incarnation();
      ASSERT_TRUE(
          j->AppendOp("session-0", 41, JournalOp{1, "billing", "after"}).ok());
      ASSERT_TRUE(j->Commit().ok());
    }
    env.PowerLoss(PowerLossMode::kDropUnsynced);
    auto opened = Journal::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    auto& j = *opened;
    EXPECT_EQ(j->incarnation(), incarnation + 1);
    const JournalSession& s = j->state().sessions.at("session-0");
    EXPECT_EQ(s.ops.count(40), 1u);
    ASSERT_EQ(s.ops.count(41), 1u);
    EXPECT_EQ(s.ops.at(41).payload, "after");
  }
}

// ---------------------------------------------------------------------------
// Salvage goes through the Env too, and its result survives a power loss.

TEST(JournalPowerLoss, SalvagedJournalSurvivesAPowerLoss) {
  FaultEnv env;
  JournalOptions o = Options(&env, Durability::kSync);
  o.segment_bytes = 1 << 20;
  const std::string segment = std::string(kDir) + "/seg-000000000001.rjl";
  std::size_t damage_at = 0;
  {
    auto j = std::move(Journal::Open(o)).value();
    ASSERT_TRUE(j->AppendOp("session-0", 1, JournalOp{1, "billing", "a"}).ok());
    ASSERT_TRUE(j->Commit().ok());
    damage_at = env.Contents(segment).size();
    ASSERT_TRUE(j->AppendOp("session-0", 2, JournalOp{1, "billing", "b"}).ok());
    ASSERT_TRUE(j->Commit().ok());
    ASSERT_TRUE(j->AppendOp("session-0", 3, JournalOp{1, "billing", "c"}).ok());
    ASSERT_TRUE(j->Commit().ok());
  }
  // A flipped bit in the record of seq 2, with intact records after it.
  std::string bytes = env.Contents(segment);
  bytes[damage_at + 12] = static_cast<char>(bytes[damage_at + 12] ^ 0x10);
  {
    std::unique_ptr<JournalWritableFile> f;
    ASSERT_EQ(env.NewWritableFile(segment, &f), 0);
    ASSERT_EQ(f->Append(bytes), 0);
    ASSERT_EQ(f->Sync(), 0);
  }
  EXPECT_EQ(Journal::Open(o).status().code(), ErrorCode::kCorrupt);
  Result<JournalInspection> seen = Journal::Inspect(kDir, &env);
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  EXPECT_EQ(seen->integrity, JournalIntegrity::kCorrupt);
  EXPECT_EQ(seen->damaged_offset, damage_at);

  Result<SalvageReport> salvaged = Journal::Salvage(
      kDir, [] { return JournalId{42}; }, &env);
  ASSERT_TRUE(salvaged.ok()) << salvaged.status().ToString();
  EXPECT_EQ(salvaged->kept_aside,
            std::vector<std::string>{"seg-000000000001.rjl.damaged"});
  env.PowerLoss(PowerLossMode::kDropUnsynced);

  auto j = std::move(Journal::Open(o)).value();
  EXPECT_EQ(j->journal_id(), JournalId{42});
  const JournalSession& s = j->state().sessions.at("session-0");
  EXPECT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops.at(1).payload, "a");
  EXPECT_EQ(s.next_seq, 2 + kSalvageSeqGap);
  // The damaged bytes are kept under their new name.
  EXPECT_EQ(env.Contents(segment + ".damaged"), bytes);
}

}  // namespace
}  // namespace rejoin
