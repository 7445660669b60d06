// Seeded journal workloads for the power-loss tests: valid sequences of
// records cut into commits and compactions, the state after every prefix
// of their records, and a runner that stops at the first failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rejoin/proto/journal.h"

namespace rejoin::testing {

// One step of a workload: a record, a Commit or a Compact.
struct Step {
  enum class Kind : std::uint8_t { kOp, kRelease, kCommit, kCompact };
  Kind kind = Kind::kCommit;
  std::string session;
  Seq seq = 0;
  JournalOp op;
  Seq below = 0;
  std::vector<Seq> seqs;
};

// A seeded workload of valid transitions over three sessions (each op
// moves forward through its role's states; releases only cover finished
// ops), cut into `commits` commits, with a compaction every
// `compact_every` commits (0: none).
std::vector<Step> MakeWorkload(JournalRole role, std::uint64_t seed,
                               int commits, int compact_every);

// The state after each prefix of the workload's records: element k holds
// the first k records applied (by a memory journal, which goes through the
// same state transitions as replay). Owner "server-1" or "client-1".
std::vector<JournalState> PrefixStates(JournalRole role,
                                       const std::vector<Step>& steps);

// What a run acknowledged before it stopped.
struct Outcome {
  bool opened = false;
  std::size_t appended = 0;   // records accepted by Append*
  std::size_t committed = 0;  // records covered by a successful Commit
  std::size_t compacted = 0;  // records covered by a successful Compact
  Status error;               // the call that failed, if any
};

// Opens a journal with `o`, runs `steps` until the first failure, then
// destroys the journal (the process is gone, its locks with it).
Outcome RunUntilFailure(const JournalOptions& o,
                        const std::vector<Step>& steps);

// Appends every record of `steps` and commits every batch but the last,
// which stays buffered for the caller to commit under a fault.
Status CommitAllButTheLastBatch(Journal& j, const std::vector<Step>& steps);

// The offsets at which records end in `bytes`, a run of whole records
// (JOURNAL.md §3 framing).
std::vector<std::size_t> RecordEnds(const std::string& bytes);

}  // namespace rejoin::testing
