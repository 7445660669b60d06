// rejoin-bench: throughput, latency and recovery of rejoin under injected loss
// and kill -9, beside plain-ZeroMQ baselines (zmq-raw, lazy pirate), the
// systems a user might pick instead (NATS, MQTT, when installed) and the
// zero-detection oracle of loss recovery, measured in the same run on the
// same machine. See docs/BENCHMARKS.md.
//
// Every process of a case is a separate process on 127.0.0.1: the real
// rejoin-broker, and this executable re-run with a hidden --role flag for the
// servers, clients and baseline brokers.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/case.h"
#include "harness/external.h"
#include "harness/report.h"
#include "harness/roles.h"
#include "harness/spawn.h"
#include "harness/targets.h"

namespace {

namespace fs = std::filesystem;
using rejoin::bench::CaseResult;
using rejoin::bench::CaseSpec;

const std::vector<std::string> kAllSystems = {
    "rejoin",    "zmq-raw",   "lazy-pirate-2500", "lazy-pirate-100", "nats",
    "mqtt-qos1", "mqtt-qos2", "rejoin-curve",     "zmq-raw-curve"};

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

std::string Describe(const CaseSpec& s) {
  char buf[160];
  if (s.kind == "idle") {
    std::snprintf(buf, sizeof buf, "%s idle x%llu", s.system.c_str(),
                  static_cast<unsigned long long>(s.idle_sessions));
    if (s.system == "rejoin" && s.sessions_per_process > 1) {
      std::snprintf(buf + std::strlen(buf), sizeof buf - std::strlen(buf),
                    " %llu per connection",
                    static_cast<unsigned long long>(s.sessions_per_process));
    }
  } else {
    std::snprintf(
        buf, sizeof buf, "%s w=%llu loss=%.2f %s s=%llu%s", s.system.c_str(),
        static_cast<unsigned long long>(s.window), s.loss,
        rejoin::bench::IsRejoinSystem(s.system) ? s.durability.c_str() : "",
        static_cast<unsigned long long>(s.sessions),
        s.kills.empty() ? "" : " kills");
    if (s.system == "rejoin" && s.sessions_per_process > 1) {
      std::snprintf(buf + std::strlen(buf), sizeof buf - std::strlen(buf),
                    " shared x%llu",
                    static_cast<unsigned long long>(s.sessions_per_process));
    }
  }
  return buf;
}

// 10,000 idle sessions: rejoin's as an application opens them, 1,000 per
// process on one ClientConnection (the target), and one connection per
// session; the same 10,000 connections on the raw broker show what libzmq
// itself costs per connection.
constexpr std::uint64_t kIdlePerConnection = 1000;
std::vector<CaseSpec> IdlePlan(const CaseSpec& base,
                               const std::vector<std::string>& systems,
                               std::uint64_t sessions, double seconds) {
  std::vector<CaseSpec> plan;
  auto has = [&](const std::string& s) {
    return std::find(systems.begin(), systems.end(), s) != systems.end();
  };
  for (auto [sys, per] :
       {std::pair<std::string, std::uint64_t>{"rejoin", kIdlePerConnection},
        {"rejoin", 1},
        {"zmq-raw", 1}}) {
    if (!has(sys)) continue;
    CaseSpec idle = base;
    idle.system = sys;
    idle.kind = "idle";
    idle.idle_sessions = sessions;
    idle.sessions_per_process = per;
    idle.seconds = seconds;
    idle.target = per > 1 ? "idle-rss" : "";
    plan.push_back(idle);
  }
  return plan;
}

// The preset behind --quick: every target, with short cases.
std::vector<CaseSpec> QuickPlan(const CaseSpec& base,
                                const std::vector<std::string>& systems) {
  std::vector<CaseSpec> plan;
  auto has = [&](const std::string& s) {
    return std::find(systems.begin(), systems.end(), s) != systems.end();
  };
  // A one-second, one-session case at `window` and `loss`.
  auto short_case = [&](const std::string& sys, std::uint64_t window,
                        double loss) {
    CaseSpec c = base;
    c.system = sys;
    c.window = window;
    c.loss = loss;
    c.seconds = 1.0;
    c.sessions = 1;
    c.durability = "process";
    return c;
  };
  for (std::uint64_t window : {std::uint64_t{64}, std::uint64_t{1}}) {
    for (double loss : {0.0, 0.01, 0.05, 0.10}) {
      for (const std::string& sys : systems) {
        // The third-party brokers have no loss injection; CURVE's cost is
        // measured without loss.
        if ((rejoin::bench::IsExternalSystem(sys) ||
             rejoin::bench::IsCurveSystem(sys)) &&
            loss > 0) {
          continue;
        }
        CaseSpec c = short_case(sys, window, loss);
        // Every case a target divides: medians of three runs (single
        // one-second cases vary by 10 %). MQTT's window-1 rows are only
        // for reading.
        if (sys == "rejoin" || (loss == 0 && sys == "zmq-raw") ||
            sys == "nats" || rejoin::bench::IsCurveSystem(sys) ||
            (rejoin::bench::IsExternalSystem(sys) && window == 64)) {
          c.repeat = 3;
        }
        c.target =
            loss == 0 ? (window == 64 ? "throughput" : "latency") : "loss";
        if (rejoin::bench::IsCurveSystem(sys)) c.target = "curve";
        plan.push_back(c);
      }
      if (has("rejoin") && window == 1 && loss == 0) {
        // What a synchronous caller pays beside the callback window: the
        // blocking Call from an application thread (no target).
        CaseSpec c = short_case("rejoin-call", window, loss);
        c.repeat = 3;
        c.target = "latency";
        plan.push_back(c);
      }
      if (has("rejoin") && window == 64 && loss > 0) {
        CaseSpec c = short_case("rejoin-oracle", window, loss);
        c.repeat = 3;
        c.target = "oracle";
        plan.push_back(c);
      }
    }
  }
  for (const std::string& sys : {std::string("rejoin"), std::string("zmq-raw"),
                                 std::string("lazy-pirate-100")}) {
    if (!has(sys)) continue;
    CaseSpec c = base;
    c.system = sys;
    c.window = 64;
    c.loss = 0.05;
    c.seconds = 3.0;
    c.durability = "process";
    c.kills = {{"server", 0.8}, {"broker", 1.6}, {"client", 2.4}};
    c.target = "kill";
    plan.push_back(c);
  }
  if (has("rejoin")) {
    // One session; 16 in separate processes; 16 and 64 sharing one journal.
    for (auto [sessions, per] : {std::pair<std::uint64_t, std::uint64_t>{1, 1},
                                 {16, 1},
                                 {16, 16},
                                 {64, 64}}) {
      CaseSpec c = base;
      c.system = "rejoin";
      c.window = 1;
      c.loss = 0;
      c.seconds = 1.5;
      c.sessions = sessions;
      c.sessions_per_process = per;
      c.durability = "sync";
      c.target = "group-commit";
      c.repeat = 3;  // fdatasync latency on a shared disk drifts
      plan.push_back(c);
    }
    // Many sessions, many processes: 64 sessions in 4 client processes (16
    // sharing one connection and journal each) against 4 servers, 16 calls
    // in flight per session. What each role spends per operation there,
    // beside the one-session case.
    CaseSpec many = base;
    many.system = "rejoin";
    many.window = 16;
    many.loss = 0;
    many.seconds = 2.0;
    many.sessions = 64;
    many.sessions_per_process = 16;
    many.servers = 4;
    many.durability = "process";
    many.target = "many-sessions";
    many.repeat = 3;
    plan.push_back(many);
    CaseSpec rss = base;
    rss.system = "rejoin";
    rss.window = 64;
    rss.loss = 0.01;
    rss.seconds = 4.0;
    rss.sessions = 4;
    rss.durability = "process";
    rss.rss_curve = true;
    rss.target = "rss-curve";
    plan.push_back(rss);
  }
  for (CaseSpec& idle : IdlePlan(base, systems, 10000, 1.0)) {
    plan.push_back(std::move(idle));
  }
  return plan;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--role") {
    return rejoin::bench::RunRole(argc, argv);
  }
  rejoin::bench::InstallChildCleanup();

  CaseSpec base;
  std::vector<std::string> systems = kAllSystems;
  std::vector<std::uint64_t> windows = {1, 64};
  std::vector<double> losses = {0, 0.01, 0.05, 0.10};
  std::string kills_text;
  std::string json_path, csv_path, plot_path, workdir;
  std::string broker_bin = REJOIN_BENCH_BROKER_PATH;
  std::string nats_server_bin = rejoin::bench::FindExecutable("nats-server");
  std::string mosquitto_bin = rejoin::bench::FindExecutable("mosquitto");
  std::string endpoint;
  std::vector<std::string> broker_args;
  bool broker_roster = true;
  double duration = 5;
  bool quick = false;
  bool keep = false;
  bool no_progress = false;
  double soak_minutes = 0;
  std::uint64_t idle_sessions = 0;

  CLI::App app{
      "rejoin-bench: throughput, latency and recovery of rejoin under loss "
      "and kill -9, beside zmq-raw, lazy-pirate, NATS and MQTT baselines"};
  app.add_option("--systems", systems,
                 "rejoin, rejoin-oracle, rejoin-curve, rejoin-call, zmq-raw, "
                 "zmq-raw-curve, lazy-pirate-<timer ms>, nats, mqtt-qos1, "
                 "mqtt-qos2 (comma list; nats and mqtt run at loss 0 only, "
                 "and only when installed; -curve: CurveZMQ on every link; "
                 "rejoin-call: window threads per session in the blocking "
                 "Client::Call instead of completion callbacks)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--window", windows,
                 "requests in flight per session; 1 = synchronous (list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--loss", losses,
                 "probability of dropping each forwarded request/response "
                 "(list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--size", base.size, "payload bytes (>= 8)")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  app.add_option("--sessions", base.sessions, "client sessions")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--sessions-per-process", base.sessions_per_process,
                 "rejoin client sessions per process; more than one share a "
                 "journal (group commit). Baselines: one per process")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--servers", base.servers, "server processes")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--duration", duration, "seconds of load per case")
      ->capture_default_str();
  app.add_option("--requests", base.requests,
                 "requests per session instead of --duration");
  app.add_option("--durability", base.durability,
                 "rejoin journals: memory, process or sync")
      ->check(CLI::IsMember({"memory", "process", "sync"}))
      ->capture_default_str();
  app.add_option("--kill", kills_text,
                 "fault schedule, e.g. server@2s,broker@4s,client@6s "
                 "(kill -9, then restart)");
  app.add_option("--concurrency", base.concurrency,
                 "rejoin server credit (and handler threads without "
                 "--inline-handlers)")
      ->capture_default_str();
  app.add_option("--inline-handlers", base.inline_handlers,
                 "run rejoin handlers on the server's I/O thread, as the "
                 "baselines' workers do (true/false)")
      ->capture_default_str();
  app.add_option("--abandon-ms", base.abandon_ms,
                 "zmq-raw: a request unanswered this long frees its slot "
                 "(counted lost unless it returns)")
      ->capture_default_str();
  app.add_option("--repeat", base.repeat,
                 "runs per case; the report shows medians")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--seed", base.seed, "seed of loss injection")
      ->capture_default_str();
  app.add_flag("--quick", quick,
               "preset covering every target in about 3 minutes");
  app.add_option("--idle-sessions", idle_sessions,
                 "also measure the broker's RSS with this many idle sessions");
  app.add_option("--soak-minutes", soak_minutes,
                 "also run rejoin at full load this long, sampling the "
                 "broker's RSS");
  app.add_option("--json", json_path, "write results as JSON");
  app.add_option("--csv", csv_path, "write results as CSV");
  app.add_option("--plot", plot_path, "write an SVG chart");
  app.add_option("--endpoint", endpoint,
                 "drive an existing rejoin broker (its own loss setting "
                 "applies; broker kills are skipped)");
  app.add_option("--broker", broker_bin, "rejoin-broker executable")
      ->capture_default_str();
  app.add_option("--nats-server", nats_server_bin,
                 "nats-server executable (default: found on PATH or in "
                 "/usr/sbin)")
      ->capture_default_str();
  app.add_option("--mosquitto", mosquitto_bin,
                 "mosquitto executable (default: found on PATH or in "
                 "/usr/sbin)")
      ->capture_default_str();
  app.add_option("--broker-arg", broker_args,
                 "extra rejoin-broker flag (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--broker-roster", broker_roster,
                 "start rejoin-broker with --roster in the case's directory, "
                 "so a restarted broker ends its grace period once the "
                 "servers have reported (true/false)")
      ->capture_default_str();
  app.add_option("--workdir", workdir,
                 "directory for journals and shared files (default: a new "
                 "one under $TMPDIR)");
  app.add_flag("--keep", keep, "keep the work directory");
  app.add_flag("--no-progress", no_progress, "no progress bar");
  CLI11_PARSE(app, argc, argv);

  for (const std::string& s : systems) {
    if (!rejoin::bench::IsKnownSystem(s)) {
      std::fprintf(stderr, "rejoin-bench: unknown system %s\n", s.c_str());
      return 2;
    }
  }
  std::vector<rejoin::bench::KillEvent> kills;
  if (!kills_text.empty()) {
    auto parsed = rejoin::bench::ParseKills(kills_text);
    if (!parsed) {
      std::fprintf(stderr, "rejoin-bench: bad --kill %s\n", kills_text.c_str());
      return 2;
    }
    kills = *parsed;
  }

  rejoin::bench::Environment env;
  env.self = SelfPath();
  env.broker_bin = broker_bin;
  env.endpoint = endpoint;
  env.broker_args = broker_args;
  env.nats_server_bin = nats_server_bin;
  env.mosquitto_bin = mosquitto_bin;
  env.broker_roster = broker_roster;
  env.keep_files = keep;
  bool own_workdir = false;
  if (workdir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/rejoin-bench-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("rejoin-bench: mkdtemp");
      return 1;
    }
    workdir = templ;
    own_workdir = true;
  }
  fs::create_directories(workdir);
  env.workdir = workdir;

  std::vector<CaseSpec> plan;
  if (quick) {
    plan = QuickPlan(base, systems);
  } else {
    for (std::uint64_t w : windows) {
      for (double loss : losses) {
        for (const std::string& sys : systems) {
          if (rejoin::bench::IsExternalSystem(sys) && loss > 0) continue;
          CaseSpec c = base;
          c.system = sys;
          c.window = w;
          c.loss = loss;
          c.seconds = duration;
          c.kills = kills;
          plan.push_back(c);
        }
      }
    }
    if (idle_sessions > 0) {
      for (CaseSpec& idle : IdlePlan(base, systems, idle_sessions, 2.0)) {
        plan.push_back(std::move(idle));
      }
    }
  }
  if (soak_minutes > 0) {
    // --quick samples the RSS curve over a few seconds; a soak replaces that.
    std::erase_if(plan,
                  [](const CaseSpec& c) { return c.target == "rss-curve"; });
    CaseSpec c = base;
    c.system = "rejoin";
    c.window = 64;
    c.seconds = soak_minutes * 60;
    c.rss_curve = true;
    c.target = "rss-curve";
    plan.push_back(c);
  }
  if (!endpoint.empty()) {
    for (CaseSpec& c : plan) {
      if (c.system == "rejoin" && c.loss != 0) {
        std::fprintf(stderr,
                     "rejoin-bench: with --endpoint the broker's own loss "
                     "setting applies, not --loss\n");
        break;
      }
    }
  }

  // The third-party systems this build or machine lacks are skipped, with
  // the reason in the report and the JSON.
  std::map<std::string, std::string> skipped;
  for (const std::string& sys : systems) {
    if (!rejoin::bench::IsExternalSystem(sys)) continue;
    const std::string why = rejoin::bench::ExternalUnavailable(
        sys, sys == "nats" ? nats_server_bin : mosquitto_bin);
    if (!why.empty()) skipped[sys] = why;
  }
  std::erase_if(plan,
                [&](const CaseSpec& c) { return skipped.count(c.system) > 0; });
  for (const auto& [sys, why] : skipped) {
    std::fprintf(stderr, "rejoin-bench: %s skipped: %s\n", sys.c_str(),
                 why.c_str());
  }
  if (!kills.empty()) {
    for (const CaseSpec& c : plan) {
      if (rejoin::bench::IsExternalSystem(c.system)) {
        std::fprintf(stderr,
                     "rejoin-bench: nats and mqtt are measured without "
                     "recovery: their clients do not survive a kill\n");
        break;
      }
    }
  }

  const rejoin::bench::MachineInfo machine =
      rejoin::bench::ProbeMachine(workdir);
  std::fprintf(stderr,
               "rejoin-bench: %d cores, %s, %s, libzmq %s, storage %s, "
               "fdatasync %.0f us; %zu cases in %s\n",
               machine.cores, machine.cpu_model.c_str(), machine.kernel.c_str(),
               machine.libzmq_version.c_str(), machine.storage_type.c_str(),
               machine.fdatasync_us, plan.size(), workdir.c_str());

  // Repeated runs are interleaved: every case runs once, then the repeated
  // ones again, so that slow drift of the machine spreads over all systems
  // instead of favouring whichever ran first.
  std::vector<std::pair<std::size_t, int>> order;
  int max_repeat = 1;
  for (const CaseSpec& c : plan) max_repeat = std::max(max_repeat, c.repeat);
  for (int run = 0; run < max_repeat; ++run) {
    for (std::size_t i = 0; i < plan.size(); ++i) {
      if (run < std::max(1, plan[i].repeat)) order.emplace_back(i, run);
    }
  }
  double total = 0;
  for (const auto& [i, run] : order) {
    total += rejoin::bench::EstimateSeconds(plan[i]);
  }
  const bool tty = ::isatty(2) != 0 && !no_progress;
  double done = 0;
  std::vector<std::vector<CaseResult>> runs(plan.size());
  for (std::size_t n = 0; n < order.size(); ++n) {
    const auto [i, run] = order[n];
    const CaseSpec& c = plan[i];
    const double est = rejoin::bench::EstimateSeconds(c);
    const std::string what = Describe(c);
    auto progress = [&](double f) {
      if (!tty) return;
      const double frac = std::min(1.0, (done + est * f) / total);
      const int width = 30;
      const int filled = static_cast<int>(frac * width);
      std::fprintf(
          stderr, "\r[%s%s] %3.0f%% run %zu/%zu %-44s",
          std::string(static_cast<std::size_t>(filled), '#').c_str(),
          std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
          frac * 100, n + 1, order.size(), what.c_str());
      std::fflush(stderr);
    };
    progress(0);
    runs[i].push_back(rejoin::bench::RunOnce(c, env, run, progress));
    done += est;
    if (!tty && !no_progress) {
      std::fprintf(stderr, "rejoin-bench: run %zu/%zu %s done\n", n + 1,
                   order.size(), what.c_str());
    }
  }
  std::vector<CaseResult> results;
  for (auto& r : runs)
    results.push_back(rejoin::bench::Aggregate(std::move(r)));
  if (tty) std::fprintf(stderr, "\r%*s\r", 100, "");

  std::printf("%s", rejoin::bench::FormatTable(results).c_str());
  for (const auto& [sys, why] : skipped) {
    std::printf("%-17s skipped: %s\n", sys.c_str(), why.c_str());
  }
  if (quick) {
    std::printf("\nTargets:\n%s",
                rejoin::bench::TargetsMarkdown(results, skipped).c_str());
  }
  for (const CaseResult& r : results) {
    for (const std::string& n : r.notes) {
      std::printf("note: %s: %s\n", Describe(r.spec).c_str(), n.c_str());
    }
  }
  int rc = 0;
  if (!json_path.empty() &&
      !WriteFile(json_path, rejoin::bench::ToJson(machine, results,
                                                  rejoin::bench::TargetsJson(
                                                      results, skipped)))) {
    std::fprintf(stderr, "rejoin-bench: cannot write %s\n", json_path.c_str());
    rc = 1;
  }
  if (!csv_path.empty() &&
      !WriteFile(csv_path, rejoin::bench::ToCsv(results))) {
    std::fprintf(stderr, "rejoin-bench: cannot write %s\n", csv_path.c_str());
    rc = 1;
  }
  if (!plot_path.empty() &&
      !WriteFile(plot_path, rejoin::bench::ToSvg(results))) {
    std::fprintf(stderr, "rejoin-bench: cannot write %s\n", plot_path.c_str());
    rc = 1;
  }
  if (own_workdir && !keep) {
    std::error_code ec;
    fs::remove_all(workdir, ec);
  }
  for (const CaseResult& r : results) {
    if (!r.ok) rc = 1;
  }
  return rc;
}
