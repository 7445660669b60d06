// The benchmark's targets evaluated on a run's cases: each a row with what
// was measured and whether it was met, printed by `rejoin-bench --quick` and
// written into its JSON. Ratios use the cases' medians (the quick preset
// runs the cases they divide three times, interleaved).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "case.h"

namespace rejoin::bench {

struct TargetRow {
  std::string target;    // e.g. "window 64 throughput >= 4 x nats"
  std::string measured;  // the numbers and the ratio, or why there are none
  std::string status;    // "met", "**not met**", "skipped", "-" (not run)
};

// `skipped`: system -> why it could not run here (external.h).
std::vector<TargetRow> EvaluateTargets(
    const std::vector<CaseResult>& cases,
    const std::map<std::string, std::string>& skipped = {});

// Markdown table of the rows ("| target | measured | status |").
std::string TargetsMarkdown(
    const std::vector<CaseResult>& cases,
    const std::map<std::string, std::string>& skipped = {});

// "\"targets\": [...], \"skipped\": {...}" for ToJson's `extra`.
std::string TargetsJson(const std::vector<CaseResult>& cases,
                        const std::map<std::string, std::string>& skipped);

}  // namespace rejoin::bench
