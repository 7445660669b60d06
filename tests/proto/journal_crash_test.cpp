// kill -9 against a real writer. A forked child appends a deterministic
// sequence of records to a kProcess journal (committing small batches,
// rolling segments and compacting) until the parent kills it with SIGKILL at
// a random moment. The parent then reopens the journal and checks that the
// state is exactly the one after some prefix of that sequence: contiguous
// seqs with the right payloads and watermark, nothing beyond, nothing
// corrupt. The child reports nothing; the journal is the only witness.
//
// REJOIN_SOAK_SCALE multiplies the number of kills; REJOIN_CRASH_SEED
// replaces the fixed seed of the kill delays.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "rejoin/proto/journal.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

constexpr char kSession[] = "crash-session";
constexpr char kService[] = "svc";
// Every kReleaseEvery-th op is followed by a release of everything more
// than kKeepBehind seqs old, so the live state stays small and compaction
// has history to drop.
constexpr Seq kReleaseEvery = 8;
constexpr Seq kKeepBehind = 3;
constexpr int kBaseKills = 20;
// The child stops on its own long after any kill delay; reaching this means
// the parent never killed it, which the parent reports as a failure.
constexpr Seq kChildMaxSeq = 50'000'000;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  int n = std::atoi(v);
  return n > 0 ? n : fallback;
}

int Kills() { return kBaseKills * EnvInt("REJOIN_SOAK_SCALE", 1); }

std::string PayloadFor(Seq seq) {
  std::string p = "op-" + std::to_string(seq) + "-";
  p.append(seq * 7 % 61, static_cast<char>('a' + seq % 26));
  return p;
}

Seq ReleaseBelowAfter(Seq seq) { return seq - kKeepBehind; }

struct Workload {
  int batch = 4;  // ops per Commit
  bool compact_every_batch = false;
  std::size_t segment_bytes = 4096;
  std::size_t compact_min_bytes = 16384;
};

JournalOptions Options(const std::string& dir, const Workload& w) {
  JournalOptions o;
  o.dir = dir;
  o.durability = Durability::kProcess;
  o.role = JournalRole::kClient;
  o.owner_id = "crash-client";
  o.new_journal_id = [] { return JournalId{4242}; };
  o.segment_bytes = w.segment_bytes;
  o.compact_min_bytes = w.compact_min_bytes;
  return o;
}

// The child: continue the sequence from wherever the journal stands, until
// killed. Never returns into the test framework.
[[noreturn]] void RunWriter(const std::string& dir, const Workload& w) {
  Result<std::unique_ptr<Journal>> opened = Journal::Open(Options(dir, w));
  if (!opened.ok()) ::_exit(2);
  Journal& j = **opened;
  Seq seq = 1;
  auto it = j.state().sessions.find(kSession);
  if (it != j.state().sessions.end()) {
    seq = it->second.next_seq;
    Seq last = seq - 1;
    // The kill may have fallen between an op and its release.
    if (last > 0 && last % kReleaseEvery == 0 &&
        !j.AppendRelease(kSession, ReleaseBelowAfter(last)).ok()) {
      ::_exit(3);
    }
  }
  int in_batch = 0;
  for (; seq < kChildMaxSeq; ++seq) {
    JournalOp op;
    op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
    op.service = kService;
    op.payload = PayloadFor(seq);
    if (!j.AppendOp(kSession, seq, std::move(op)).ok()) ::_exit(4);
    if (seq % kReleaseEvery == 0 &&
        !j.AppendRelease(kSession, ReleaseBelowAfter(seq)).ok()) {
      ::_exit(5);
    }
    if (++in_batch < w.batch) continue;
    in_batch = 0;
    if (!j.Commit().ok()) ::_exit(6);
    if (w.compact_every_batch || j.NeedsCompaction()) {
      if (!j.Compact().ok()) ::_exit(7);
    }
  }
  ::_exit(0);
}

// Checks that `state` is the state after ops 1..m of the sequence (and
// possibly the release that follows op m), and stores m.
::testing::AssertionResult IsPrefixOfSequence(const JournalState& state,
                                              Incarnation current, Seq* m) {
  *m = 0;
  if (state.sessions.empty()) return ::testing::AssertionSuccess();
  if (state.sessions.size() != 1 || !state.sessions.contains(kSession)) {
    return ::testing::AssertionFailure() << "unexpected sessions";
  }
  const JournalSession& s = state.sessions.at(kSession);
  *m = s.next_seq - 1;
  const Seq last_release = *m / kReleaseEvery * kReleaseEvery;
  Seq low = 1, high = 1;  // allowed range of released_below
  if (last_release > 0) high = low = ReleaseBelowAfter(last_release);
  if (last_release == *m && last_release >= kReleaseEvery) {
    Seq before = last_release - kReleaseEvery;
    low = before > 0 ? ReleaseBelowAfter(before) : 1;
  }
  if (s.released_below != low && s.released_below != high) {
    return ::testing::AssertionFailure()
           << "released_below " << s.released_below << " after op " << *m
           << ", expected " << low << " or " << high;
  }
  if (s.ops.size() != *m + 1 - s.released_below) {
    return ::testing::AssertionFailure()
           << s.ops.size() << " ops live after op " << *m
           << " with released_below " << s.released_below;
  }
  Seq expect = s.released_below;
  for (const auto& [seq, op] : s.ops) {
    if (seq != expect++) {
      return ::testing::AssertionFailure() << "gap before seq " << seq;
    }
    if (op.payload != PayloadFor(seq) || op.service != kService ||
        op.state != static_cast<std::uint8_t>(ClientOpState::kPrepared) ||
        op.incarnation == 0 || op.incarnation >= current) {
      return ::testing::AssertionFailure() << "wrong record for seq " << seq;
    }
  }
  return ::testing::AssertionSuccess();
}

struct KillStats {
  int kills = 0;
  int torn_tails = 0;
  Seq last_m = 0;
  Seq max_m = 0;
};

// Forks a writer on `dir`, kills it after a random delay, and checks the
// journal it leaves. `prev_m` is the prefix the previous kill left, which
// the writer started from (0 for a fresh directory).
void KillWriterAndCheck(const std::string& dir, const Workload& w,
                        std::mt19937_64& rng, KillStats* stats) {
  std::uniform_int_distribution<int> delay_us(500, 12000);
  const int delay = delay_us(rng);
  SCOPED_TRACE("kill " + std::to_string(stats->kills) + " after " +
               std::to_string(delay) + " us");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) RunWriter(dir, w);
  std::this_thread::sleep_for(std::chrono::microseconds(delay));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "writer ended by itself, exit status "
      << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  ++stats->kills;

  Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir, w));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Journal& j = **r;
  Seq m = 0;
  ASSERT_TRUE(IsPrefixOfSequence(j.state(), j.incarnation(), &m));
  // Committed records never disappear: the new prefix extends the old one.
  EXPECT_GE(m, stats->last_m);
  if (j.report().truncated_bytes > 0) ++stats->torn_tails;
  stats->last_m = m;
  stats->max_m = std::max(stats->max_m, m);
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_FALSE(e.path().string().ends_with(".tmp")) << e.path();
  }
}

std::mt19937_64 MakeRng(std::uint64_t salt) {
  return std::mt19937_64(
      static_cast<std::uint64_t>(EnvInt("REJOIN_CRASH_SEED", 20240611)) ^ salt);
}

TEST(JournalCrash, KilledWriterOfAFreshJournalLeavesAPrefix) {
  TempDir tmp;
  Workload w;
  std::mt19937_64 rng = MakeRng(1);
  Seq max_m = 0;
  for (int i = 0; i < Kills(); ++i) {
    std::string dir = tmp.Sub("j" + std::to_string(i));
    KillStats stats;
    KillWriterAndCheck(dir, w, rng, &stats);
    if (HasFatalFailure()) return;
    max_m = std::max(max_m, stats.max_m);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  EXPECT_GT(max_m, 0u) << "no writer ever committed: the test is vacuous";
}

TEST(JournalCrash, RepeatedlyKilledWriterKeepsEveryCommittedPrefix) {
  TempDir tmp;
  Workload w;
  w.segment_bytes = 2048;
  w.compact_min_bytes = 8192;
  std::mt19937_64 rng = MakeRng(2);
  KillStats stats;
  for (int i = 0; i < Kills(); ++i) {
    KillWriterAndCheck(tmp.path(), w, rng, &stats);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(stats.last_m, 0u);
  RecordProperty("ops", static_cast<int>(stats.last_m));
  RecordProperty("torn_tails", stats.torn_tails);
}

// Commits of a few hundred kilobytes: a SIGKILL can land inside one
// write(2), leaving a torn record for replay to cut off.
TEST(JournalCrash, WriterKilledInsideLargeWritesLeavesAPrefix) {
  TempDir tmp;
  Workload w;
  w.batch = 4096;
  w.segment_bytes = std::size_t{8} << 20;
  w.compact_min_bytes = std::size_t{4} << 20;
  std::mt19937_64 rng = MakeRng(4);
  KillStats stats;
  for (int i = 0; i < Kills(); ++i) {
    KillWriterAndCheck(tmp.path(), w, rng, &stats);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(stats.last_m, 0u);
  RecordProperty("ops", static_cast<int>(stats.last_m));
  RecordProperty("torn_tails", stats.torn_tails);
}

TEST(JournalCrash, WriterKilledWhileCompactingLeavesAPrefix) {
  TempDir tmp;
  Workload w;
  w.batch = 3;
  w.compact_every_batch = true;
  std::mt19937_64 rng = MakeRng(3);
  KillStats stats;
  for (int i = 0; i < Kills(); ++i) {
    KillWriterAndCheck(tmp.path(), w, rng, &stats);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(stats.last_m, 0u);
  RecordProperty("ops", static_cast<int>(stats.last_m));
}

}  // namespace
}  // namespace rejoin
