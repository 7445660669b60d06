// The targets: what each compares, on which cases.
#include "targets.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "report.h"
#include "stats.h"

namespace rejoin::bench {
namespace {

const CaseResult* Find(const std::vector<CaseResult>& cases,
                       const std::string& system, std::uint64_t window,
                       double loss, const std::string& durability = "process",
                       std::uint64_t sessions = 1) {
  for (const CaseResult& r : cases) {
    const CaseSpec& s = r.spec;
    if (s.kind == "load" && s.kills.empty() && s.system == system &&
        s.window == window && std::fabs(s.loss - loss) < 1e-9 &&
        s.sessions == sessions &&
        (!IsRejoinSystem(system) || s.durability == durability)) {
      return &r;
    }
  }
  return nullptr;
}

std::string Met(bool ok) { return ok ? "met" : "**not met**"; }

std::string Runs(const CaseResult& r) {
  return r.runs > 1 ? " (medians of " + std::to_string(r.runs) + ")" : "";
}

// CPU seconds of `role` per operation answered, in microseconds; < 0 when
// unknown. Role CPU is the median over runs, operations are summed.
double CpuPerOpUs(const CaseResult& r, const std::string& role) {
  auto it = r.roles.find(role);
  if (it == r.roles.end() || r.completed == 0) return -1;
  const double ops = static_cast<double>(r.completed) / std::max(1, r.runs);
  return it->second.cpu_s * 1e6 / ops;
}

class Rows {
 public:
  explicit Rows(const std::map<std::string, std::string>& skipped)
      : skipped_(skipped) {}
  void Add(std::string target, std::string measured, std::string status) {
    rows_.push_back(
        {std::move(target), std::move(measured), std::move(status)});
  }
  // A row whose comparison case did not run: skipped (with the reason) when
  // its system could not run here, else "not run".
  void Missing(std::string target, const std::string& system) {
    auto it = skipped_.find(system);
    if (it != skipped_.end()) {
      Add(std::move(target), "skipped: " + system + ": " + it->second,
          "skipped");
    } else {
      Add(std::move(target), "not run", "-");
    }
  }
  std::vector<TargetRow> Take() { return std::move(rows_); }

 private:
  const std::map<std::string, std::string>& skipped_;
  std::vector<TargetRow> rows_;
};

// The name of a row about `subject`: rejoin's rows say only what they
// compare.
std::string About(const std::string& subject, std::string what) {
  return subject == "rejoin" ? what : subject + " " + what;
}

// Window-64 throughput of `subject` (rejoin) against `system`: met when the
// ratio reaches `need` (no target when need <= 0).
void ThroughputRow(Rows& rows, const std::vector<CaseResult>& cases,
                   const std::string& system, double need,
                   const std::string& subject = "rejoin") {
  const CaseResult* r = Find(cases, subject, 64, 0);
  const CaseResult* b = Find(cases, system, 64, 0);
  const std::string name = About(
      subject,
      need > 0 ? "window 64 throughput >= " + Fmt("%g", need) + " x " + system
               : "window 64 throughput vs " + system + " (no target)");
  if (r == nullptr || b == nullptr || !b->ok || b->throughput_rps <= 0) {
    if (b != nullptr && !b->ok) {
      rows.Add(name, system + " failed: " + b->error, "**not met**");
    } else {
      rows.Missing(name, system);
    }
    return;
  }
  const double ratio = r->throughput_rps / b->throughput_rps;
  rows.Add(name,
           Fmt("%.0f", r->throughput_rps) + " vs " +
               Fmt("%.0f", b->throughput_rps) +
               " ops/s = " + Fmt("%.2f", ratio) + " x" + Runs(*b),
           need > 0 ? Met(ratio >= need) : "-");
}

// Window-1 p50 of `subject` (rejoin) against `system`: met when the
// subject's is at most `most` times the other's (no target when most <= 0).
void LatencyRow(Rows& rows, const std::vector<CaseResult>& cases,
                const std::string& system, double most,
                const std::string& subject = "rejoin") {
  const CaseResult* r = Find(cases, subject, 1, 0);
  const CaseResult* b = Find(cases, system, 1, 0);
  std::string what =
      "window 1 p50 latency <= " + Fmt("%g", most) + " x " + system;
  if (most <= 0) what = "window 1 p50 latency vs " + system + " (no target)";
  if (most == 1) what = "window 1 p50 latency <= " + system + " p50";
  const std::string name = About(subject, what);
  if (r == nullptr || b == nullptr || !b->ok || b->p50_us <= 0) {
    if (b != nullptr && !b->ok) {
      rows.Add(name, system + " failed: " + b->error, "**not met**");
    } else {
      rows.Missing(name, system);
    }
    return;
  }
  const double ratio = r->p50_us / b->p50_us;
  rows.Add(name,
           Fmt("%.0f", r->p50_us) + " vs " + Fmt("%.0f", b->p50_us) +
               " us = " + Fmt("%.2f", ratio) + " x" + Runs(*b),
           most > 0 ? Met(ratio <= most) : "-");
}

}  // namespace

std::vector<TargetRow> EvaluateTargets(
    const std::vector<CaseResult>& cases,
    const std::map<std::string, std::string>& skipped) {
  Rows rows(skipped);
  ThroughputRow(rows, cases, "zmq-raw", 0.85);
  LatencyRow(rows, cases, "zmq-raw", 1.1);
  LatencyRow(rows, cases, "nats", 1.0);
  ThroughputRow(rows, cases, "nats", 4);
  ThroughputRow(rows, cases, "mqtt-qos2", 20);
  ThroughputRow(rows, cases, "mqtt-qos1", 0);
  // Loss at window 64 against the oracle: the same loss, each dropped
  // envelope delivered one broker turn later (zero detection time).
  const double losses[] = {0.01, 0.05, 0.10};
  const CaseResult* r64 = Find(cases, "rejoin", 64, 0);
  for (double loss : losses) {
    const std::string name = "window 64 goodput at " + Fmt("%.0f", loss * 100) +
                             " % loss >= 0.95 x oracle";
    const CaseResult* c = Find(cases, "rejoin", 64, loss);
    const CaseResult* o = Find(cases, "rejoin-oracle", 64, loss);
    if (c == nullptr || o == nullptr || o->goodput_rps <= 0) {
      rows.Missing(name, "rejoin-oracle");
      continue;
    }
    const double ratio = c->goodput_rps / o->goodput_rps;
    std::string measured = Fmt("%.0f", c->goodput_rps) + " / " +
                           Fmt("%.0f", o->goodput_rps) + " = " +
                           Fmt("%.2f", ratio);
    if (r64 != nullptr && r64->goodput_rps > 0) {
      measured += " (lossless " + Fmt("%.0f", r64->goodput_rps) + ": rejoin " +
                  Fmt("%.2f", c->goodput_rps / r64->goodput_rps) + ", oracle " +
                  Fmt("%.2f", o->goodput_rps / r64->goodput_rps) + " of it)";
    }
    rows.Add(name, measured, Met(ratio >= 0.95));
  }
  const double need1[] = {0.9, 0.8, 0.6};
  const CaseResult* r1 = Find(cases, "rejoin", 1, 0);
  for (int i = 0; i < 3; ++i) {
    const std::string name =
        "window 1 goodput at " + Fmt("%.0f", losses[i] * 100) +
        " % loss >= " + Fmt("%.1f", need1[i]) + " x lossless";
    const CaseResult* c = Find(cases, "rejoin", 1, losses[i]);
    if (r1 == nullptr || c == nullptr || r1->goodput_rps <= 0) {
      rows.Missing(name, "rejoin");
      continue;
    }
    const double ratio = c->goodput_rps / r1->goodput_rps;
    rows.Add(name,
             Fmt("%.0f", c->goodput_rps) + " / " +
                 Fmt("%.0f", r1->goodput_rps) + " = " + Fmt("%.2f", ratio),
             Met(ratio >= need1[i]));
  }
  // CPU per operation, role by role, against zmq-raw at window 64.
  const CaseResult* z64 = Find(cases, "zmq-raw", 64, 0);
  for (const char* role : {"broker", "client", "server"}) {
    const std::string name =
        std::string("window 64 ") + role + " CPU per operation <= zmq-raw's";
    const double mine = r64 != nullptr ? CpuPerOpUs(*r64, role) : -1;
    const double theirs = z64 != nullptr ? CpuPerOpUs(*z64, role) : -1;
    if (mine < 0 || theirs <= 0) {
      rows.Missing(name, "zmq-raw");
      continue;
    }
    rows.Add(name,
             Fmt("%.2f", mine) + " vs " + Fmt("%.2f", theirs) +
                 " us = " + Fmt("%.2f", mine / theirs) + " x",
             Met(mine <= theirs));
  }
  // A synchronous caller (the blocking Call from an application thread)
  // against the callback window and raw ZeroMQ's client.
  if (Find(cases, "rejoin-call", 1, 0) != nullptr) {
    LatencyRow(rows, cases, "rejoin", 0, "rejoin-call");
    LatencyRow(rows, cases, "zmq-raw", 0, "rejoin-call");
  }
  // CurveZMQ on every link: rejoin-curve against rejoin in clear, and
  // libzmq's own cost (zmq-raw-curve against zmq-raw) beside it.
  const bool curve_ran = Find(cases, "rejoin-curve", 64, 0) != nullptr ||
                         Find(cases, "rejoin-curve", 1, 0) != nullptr;
  if (curve_ran) {
    ThroughputRow(rows, cases, "rejoin", 0.7, "rejoin-curve");
    LatencyRow(rows, cases, "rejoin", 1.3, "rejoin-curve");
    ThroughputRow(rows, cases, "zmq-raw", 0, "zmq-raw-curve");
    const CaseResult* c64 = Find(cases, "rejoin-curve", 64, 0);
    for (const char* role : {"broker", "client", "server"}) {
      const std::string name = std::string("rejoin-curve window 64 ") + role +
                               " CPU per operation vs rejoin (no target)";
      const double mine = c64 != nullptr ? CpuPerOpUs(*c64, role) : -1;
      const double clear = r64 != nullptr ? CpuPerOpUs(*r64, role) : -1;
      if (mine < 0 || clear <= 0) {
        rows.Missing(name, "rejoin-curve");
        continue;
      }
      rows.Add(name,
               Fmt("%.2f", mine) + " vs " + Fmt("%.2f", clear) +
                   " us = " + Fmt("%.2f", mine / clear) + " x",
               "-");
    }
  }
  // Many sessions (64 in 4 client processes, 4 servers): throughput, and
  // each role's CPU per operation beside the one-session window-64 case.
  for (const CaseResult& m : cases) {
    if (m.spec.system != "rejoin" || m.spec.kind != "load" ||
        m.spec.sessions < 16 || !m.spec.kills.empty() || m.spec.loss != 0 ||
        m.spec.durability != "process") {
      continue;
    }
    std::string measured =
        Fmt("%.0f", m.throughput_rps) + " ops/s; CPU per operation";
    for (const char* role : {"broker", "client", "server"}) {
      const double many = CpuPerOpUs(m, role);
      const double one = r64 != nullptr ? CpuPerOpUs(*r64, role) : -1;
      measured += std::string(" ") + role + " " + Fmt("%.2f", many) + " us";
      if (one > 0) measured += " (1 session: " + Fmt("%.2f", one) + ")";
    }
    rows.Add(std::to_string(m.spec.sessions) + " sessions in " +
                 std::to_string(
                     m.spec.sessions /
                     std::max<std::uint64_t>(m.spec.sessions_per_process, 1)) +
                 " client processes, " + std::to_string(m.spec.servers) +
                 " servers, window " + std::to_string(m.spec.window) +
                 " (no target)",
             measured + Runs(m), "-");
  }
  std::uint64_t lost = 0, dup = 0, n = 0;
  for (const CaseResult& r : cases) {
    if ((r.spec.system != "rejoin" && r.spec.system != "rejoin-curve" &&
         r.spec.system != "rejoin-call") ||
        r.spec.kind != "load") {
      continue;
    }
    lost += r.lost;
    dup += r.duplicate_executions;
    ++n;
  }
  rows.Add("rejoin: zero lost, zero duplicate executions, every case",
           std::to_string(n) + " cases: lost " + std::to_string(lost) +
               ", duplicate executions " + std::to_string(dup),
           n == 0 ? "-" : Met(lost == 0 && dup == 0));
  for (const char* role : {"server", "broker"}) {
    std::vector<double> values;
    bool missing = false;     // an in-flight operation never completed
    bool unmeasured = false;  // none was waiting for the killed process
    for (const CaseResult& r : cases) {
      if (r.spec.system != "rejoin") continue;
      for (std::size_t k = 0;
           k < r.spec.kills.size() && k < r.recovery_ms.size(); ++k) {
        if (r.spec.kills[k].role != role) continue;
        if (r.recovery_ms[k]) {
          values.push_back(*r.recovery_ms[k]);
        } else if (r.lost == 0) {
          // Everything completed, yet no operation sent before the kill
          // ran after it: the killed process had nothing in hand.
          unmeasured = true;
        } else {
          missing = true;
        }
      }
    }
    const std::string name = std::string("kill -9 ") + role +
                             ": in-flight op completes <= 200 ms after restart";
    if (values.empty() && !missing) {
      rows.Add(name,
               unmeasured
                   ? "not measured: no in-flight operation ran after the "
                     "kill (run again)"
                   : "not run",
               "-");
      continue;
    }
    std::string text;
    double worst = 0;
    for (double v : values) {
      text += Fmt("%.0f ms ", v);
      worst = std::max(worst, v);
    }
    if (missing) text += "(one never completed)";
    if (unmeasured) text += "(one kill caught nothing in flight)";
    rows.Add(name, text, Met(!missing && worst <= 200));
  }
  // Group commit: 16 or more sessions against one, each case on its own row
  // (sessions on one shared journal, or in separate processes with a
  // journal each); the target is met when any of them reaches 10 x.
  const CaseResult* s1 = nullptr;
  std::vector<const CaseResult*> many;
  for (const CaseResult& r : cases) {
    const CaseSpec& s = r.spec;
    if (s.system != "rejoin" || s.durability != "sync" || s.kind != "load" ||
        !s.kills.empty() || s.loss != 0) {
      continue;
    }
    if (s.sessions == 1 && s1 == nullptr) s1 = &r;
    if (s.sessions >= 16) many.push_back(&r);
  }
  if (s1 != nullptr && s1->goodput_rps > 0 && !many.empty()) {
    for (const CaseResult* r : many) {
      const double ratio = r->goodput_rps / s1->goodput_rps;
      const std::string how = r->spec.sessions_per_process > 1
                                  ? "on one shared journal"
                                  : "in separate processes";
      rows.Add("sync durability, " + std::to_string(r->spec.sessions) +
                   " sessions " + how + " >= 10 x one session",
               Fmt("%.0f", r->goodput_rps) + " / " +
                   Fmt("%.0f", s1->goodput_rps) +
                   " ops/s = " + Fmt("%.1f", ratio) + " x",
               Met(ratio >= 10));
    }
  } else {
    rows.Add("sync durability, 16 sessions >= 10 x one session", "not run",
             "-");
  }
  // The layout an application would use: the most sessions per connection.
  const CaseResult* idle = nullptr;
  for (const CaseResult& r : cases) {
    if (r.spec.kind == "idle" && r.spec.system == "rejoin" &&
        (idle == nullptr ||
         r.spec.sessions_per_process > idle->spec.sessions_per_process)) {
      idle = &r;
    }
  }
  if (idle != nullptr && idle->ok) {
    const double mib = static_cast<double>(idle->idle_broker_rss_kib) / 1024;
    rows.Add("broker RSS <= 64 MiB with " +
                 std::to_string(idle->spec.idle_sessions) + " idle sessions (" +
                 IdleLayout(idle->spec) + ")",
             Fmt("%.1f MiB", mib),
             Met(mib <= 64 && idle->spec.idle_sessions >= 10000));
  } else {
    rows.Add("broker RSS <= 64 MiB with 10,000 idle sessions",
             idle == nullptr ? "not run" : "failed: " + idle->error, "-");
  }
  const CaseResult* curve = nullptr;
  for (const CaseResult& r : cases) {
    if (r.spec.kind == "load" && r.broker_rss.size() >= 8) curve = &r;
  }
  if (curve != nullptr) {
    const auto& c = curve->broker_rss;
    const std::size_t q = c.size() / 4;
    std::vector<double> first, last;
    for (std::size_t i = 0; i < q; ++i) {
      first.push_back(static_cast<double>(c[q + i].second));  // after warm-up
      last.push_back(static_cast<double>(c[c.size() - q + i].second));
    }
    const double a = Median(first), b = Median(last);
    const double minutes = c.back().first / 60;
    // The last sample lands a moment before the case's end.
    const bool long_enough = curve->spec.seconds >= 600;
    rows.Add("broker RSS does not grow at full load (10 min)",
             Fmt("%.1f", a / 1024) + " -> " + Fmt("%.1f", b / 1024) +
                 " MiB over " + Fmt("%.1f", minutes) + " min",
             long_enough ? Met(b <= a * 1.1 + 1024)
                         : std::string(b <= a * 1.1 + 1024 ? "no growth seen; "
                                                           : "**growth**; ") +
                               "run shorter than 10 min");
  } else {
    rows.Add("broker RSS does not grow at full load (10 min)", "not run", "-");
  }
  return rows.Take();
}

std::string TargetsMarkdown(const std::vector<CaseResult>& cases,
                            const std::map<std::string, std::string>& skipped) {
  std::ostringstream o;
  o << "| target | measured | status |\n|---|---|---|\n";
  for (const TargetRow& r : EvaluateTargets(cases, skipped)) {
    o << "| " << r.target << " | " << r.measured << " | " << r.status << " |\n";
  }
  return o.str();
}

std::string TargetsJson(const std::vector<CaseResult>& cases,
                        const std::map<std::string, std::string>& skipped) {
  std::ostringstream o;
  o << "\"targets\": [";
  bool first = true;
  for (const TargetRow& r : EvaluateTargets(cases, skipped)) {
    o << (first ? "\n" : ",\n") << "    {\"target\": " << JsonString(r.target)
      << ", \"measured\": " << JsonString(r.measured)
      << ", \"status\": " << JsonString(r.status) << "}";
    first = false;
  }
  o << "\n  ],\n  \"skipped\": {";
  first = true;
  for (const auto& [system, why] : skipped) {
    o << (first ? "" : ", ") << JsonString(system) << ": " << JsonString(why);
    first = false;
  }
  o << "}";
  return o.str();
}

}  // namespace rejoin::bench
