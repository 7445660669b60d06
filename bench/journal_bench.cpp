// Journal throughput: appends per durability level, batched as the I/O loop
// batches them (one Commit per loop turn), and replay speed on open. Both
// report records/s through items_processed. Files go to a fresh directory
// under the system temp dir, removed afterwards.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "rejoin/proto/journal.h"

namespace rejoin {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPayloadBytes = 64;
// Ops older than this many seqs are released, as acknowledgements would,
// so the live state stays the size of a busy client's window.
constexpr Seq kLiveWindow = 1024;

class BenchDir {
 public:
  BenchDir() {
    std::string templ = (fs::temp_directory_path() / "rejoin-bench-XXXXXX");
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~BenchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  BenchDir(const BenchDir&) = delete;
  BenchDir& operator=(const BenchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

JournalOptions BenchOptions(const std::string& dir, Durability durability) {
  JournalOptions o;
  o.dir = dir + "/journal";
  o.durability = durability;
  o.role = JournalRole::kClient;
  o.owner_id = "bench-client";
  o.new_journal_id = [] { return JournalId{1}; };
  return o;
}

std::unique_ptr<Journal> OpenOrSkip(benchmark::State& state,
                                    const JournalOptions& o) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  if (!r.ok()) {
    state.SkipWithError(r.status().ToString().c_str());
    return nullptr;
  }
  return std::move(r).value();
}

JournalOp PreparedOp(const std::string& payload) {
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
  op.service = "billing";
  op.payload = payload;
  return op;
}

// Appends `batch` ops and one release, then commits: one I/O loop turn.
bool AppendTurn(Journal& j, Seq* seq, int batch, const std::string& payload) {
  for (int i = 0; i < batch; ++i) {
    if (!j.AppendOp("bench-session", (*seq)++, PreparedOp(payload)).ok()) {
      return false;
    }
  }
  if (*seq > kLiveWindow &&
      !j.AppendRelease("bench-session", *seq - kLiveWindow).ok()) {
    return false;
  }
  return j.Commit().ok();
}

// Args: durability level, ops per Commit.
void BM_JournalAppend(benchmark::State& state) {
  auto durability = static_cast<Durability>(state.range(0));
  const int batch = static_cast<int>(state.range(1));
  BenchDir dir;
  auto j = OpenOrSkip(state, BenchOptions(dir.path(), durability));
  if (j == nullptr) return;
  const std::string payload(kPayloadBytes, 'p');
  Seq seq = 1;
  for (auto _ : state) {
    if (!AppendTurn(*j, &seq, batch, payload)) {
      state.SkipWithError("append failed");
      break;
    }
    // Compaction belongs to the steady-state cost of appending.
    if (j->NeedsCompaction() && !j->Compact().ok()) {
      state.SkipWithError("compaction failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetLabel(std::string(DurabilityName(durability)));
}
BENCHMARK(BM_JournalAppend)
    ->ArgNames({"level", "batch"})
    ->Args({static_cast<int>(Durability::kMemory), 64})
    ->Args({static_cast<int>(Durability::kMemory), 256})
    ->Args({static_cast<int>(Durability::kProcess), 64})
    ->Args({static_cast<int>(Durability::kProcess), 256})
    ->Args({static_cast<int>(Durability::kSync), 64})
    ->Args({static_cast<int>(Durability::kSync), 256})
    ->UseRealTime();

// Args: records in the journal, whether old ops are released (a steady
// window of live ops) or all stay live (the state grows with the log).
void BM_JournalReplay(benchmark::State& state) {
  const auto records = static_cast<Seq>(state.range(0));
  const bool release = state.range(1) != 0;
  BenchDir dir;
  JournalOptions o = BenchOptions(dir.path(), Durability::kProcess);
  // One segment per 16 MiB so replay crosses files as it would in use.
  o.segment_bytes = std::size_t{16} << 20;
  {
    auto j = OpenOrSkip(state, o);
    if (j == nullptr) return;
    const std::string payload(kPayloadBytes, 'p');
    for (Seq seq = 1; seq <= records;) {
      for (int i = 0; i < 256 && seq <= records; ++i, ++seq) {
        if (!j->AppendOp("bench-session", seq, PreparedOp(payload)).ok()) {
          state.SkipWithError("append failed");
          return;
        }
      }
      if (release && seq > kLiveWindow &&
          !j->AppendRelease("bench-session", seq - kLiveWindow).ok()) {
        state.SkipWithError("release failed");
        return;
      }
      if (!j->Commit().ok()) {
        state.SkipWithError("commit failed");
        return;
      }
    }
  }
  std::size_t replayed = 0;
  for (auto _ : state) {
    auto j = OpenOrSkip(state, o);
    if (j == nullptr) return;
    replayed += j->report().records;
    state.PauseTiming();  // freeing the state is not replay
    j.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(replayed));
}
BENCHMARK(BM_JournalReplay)
    ->ArgNames({"records", "release"})
    ->Args({100000, 1})
    ->Args({100000, 0})
    ->Args({1000000, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace rejoin
