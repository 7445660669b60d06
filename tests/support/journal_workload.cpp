// The power-loss tests' workloads; see journal_workload.h.
#include "support/journal_workload.h"

#include <cstdlib>
#include <memory>
#include <random>
#include <utility>

namespace rejoin::testing {

std::vector<Step> MakeWorkload(JournalRole role, std::uint64_t seed,
                               int commits, int compact_every) {
  std::mt19937_64 rng(seed);
  struct Live {
    Seq next = 1;
    Seq released_below = 1;
    std::vector<std::pair<Seq, std::uint8_t>> open;  // seq, state
    std::vector<Seq> finished;
  };
  std::vector<Live> sessions(3);
  const std::uint8_t final_state =
      role == JournalRole::kServer
          ? static_cast<std::uint8_t>(ServerOpState::kExecuted)
          : static_cast<std::uint8_t>(ClientOpState::kCompleted);
  std::vector<Step> steps;
  for (int c = 1; c <= commits; ++c) {
    const int records = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < records; ++r) {
      const std::size_t si = rng() % sessions.size();
      Live& s = sessions[si];
      Step step;
      step.session = "session-" + std::to_string(si);
      const unsigned pick = static_cast<unsigned>(rng() % 10);
      if (pick < 2 && !s.finished.empty()) {
        step.kind = Step::Kind::kRelease;
        if (rng() % 2 == 0) {
          step.below = s.finished.back() + 1;
          s.released_below = step.below;
          s.finished.clear();
          std::erase_if(s.open,
                        [&](const auto& o) { return o.first < step.below; });
        } else {
          step.below = s.released_below;
          step.seqs.push_back(s.finished.front());
          s.finished.erase(s.finished.begin());
        }
      } else if (pick < 6 && !s.open.empty()) {
        auto& [seq, state] = s.open.front();
        step.kind = Step::Kind::kOp;
        step.seq = seq;
        step.op.state = static_cast<std::uint8_t>(state + 1);
        if (step.op.state == final_state) {
          step.op.payload =
              "response-" + std::to_string(seq) + std::string(rng() % 200, 'r');
          s.finished.push_back(seq);
          s.open.erase(s.open.begin());
        } else {
          state = step.op.state;
        }
      } else {
        step.kind = Step::Kind::kOp;
        step.seq = s.next++;
        step.op.state = 1;
        step.op.service = "billing";
        step.op.payload = "request-" + std::to_string(step.seq) +
                          std::string(rng() % 300, 'q');
        s.open.emplace_back(step.seq, std::uint8_t{1});
      }
      steps.push_back(std::move(step));
    }
    steps.push_back(Step{});  // kCommit
    if (compact_every > 0 && c % compact_every == 0) {
      Step compact;
      compact.kind = Step::Kind::kCompact;
      steps.push_back(std::move(compact));
    }
  }
  return steps;
}

std::vector<JournalState> PrefixStates(JournalRole role,
                                       const std::vector<Step>& steps) {
  JournalOptions o;
  o.durability = Durability::kMemory;
  o.role = role;
  o.owner_id = role == JournalRole::kServer ? "server-1" : "client-1";
  o.new_journal_id = [] { return JournalId{1}; };
  auto j = std::move(Journal::Open(o)).value();
  std::vector<JournalState> states{j->state()};
  for (const Step& s : steps) {
    Status st;
    switch (s.kind) {
      case Step::Kind::kOp:
        st = j->AppendOp(s.session, s.seq, s.op);
        break;
      case Step::Kind::kRelease:
        st = j->AppendRelease(s.session, s.below, s.seqs);
        break;
      case Step::Kind::kCommit:
      case Step::Kind::kCompact:
        continue;
    }
    if (!st.ok()) std::abort();  // MakeWorkload makes valid records only
    states.push_back(j->state());
  }
  return states;
}

Outcome RunUntilFailure(const JournalOptions& o,
                        const std::vector<Step>& steps) {
  Outcome out;
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  if (!r.ok()) {
    out.error = r.status();
    return out;
  }
  out.opened = true;
  std::unique_ptr<Journal> j = std::move(r).value();
  for (const Step& s : steps) {
    Status st;
    switch (s.kind) {
      case Step::Kind::kOp:
        st = j->AppendOp(s.session, s.seq, s.op);
        if (st.ok()) ++out.appended;
        break;
      case Step::Kind::kRelease:
        st = j->AppendRelease(s.session, s.below, s.seqs);
        if (st.ok()) ++out.appended;
        break;
      case Step::Kind::kCommit:
        st = j->Commit();
        if (st.ok()) out.committed = out.appended;
        break;
      case Step::Kind::kCompact:
        st = j->Compact();
        if (st.ok()) out.committed = out.compacted = out.appended;
        break;
    }
    if (!st.ok()) {
      out.error = st;
      break;
    }
  }
  return out;
}

Status CommitAllButTheLastBatch(Journal& j, const std::vector<Step>& steps) {
  std::size_t last_commit = steps.size();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind == Step::Kind::kCommit) last_commit = i;
  }
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    Status st;
    switch (s.kind) {
      case Step::Kind::kOp:
        st = j.AppendOp(s.session, s.seq, s.op);
        break;
      case Step::Kind::kRelease:
        st = j.AppendRelease(s.session, s.below, s.seqs);
        break;
      case Step::Kind::kCommit:
        if (i != last_commit) st = j.Commit();
        break;
      case Step::Kind::kCompact:
        st = j.Compact();
        break;
    }
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

std::vector<std::size_t> RecordEnds(const std::string& bytes) {
  std::vector<std::size_t> ends;
  std::size_t at = 0;
  while (at + 9 <= bytes.size()) {
    std::uint32_t length = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      length |= static_cast<std::uint32_t>(
                    static_cast<unsigned char>(bytes[at + 4 + i]))
                << (8 * i);
    }
    at += 9 + length;
    ends.push_back(at);
  }
  return ends;
}

}  // namespace rejoin::testing
