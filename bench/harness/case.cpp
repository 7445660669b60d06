// Running a case: processes, the start barrier, the fault schedule, and the
// arithmetic over the shared files afterwards.
#include "case.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "external.h"
#include "rejoin/transport/curve.h"
#include "report.h"
#include "roles.h"
#include "shm.h"
#include "stats.h"

namespace rejoin::bench {
namespace {

namespace fs = std::filesystem;

std::int64_t LazyTimerMs(const std::string& system) {
  const std::string prefix = "lazy-pirate-";
  if (system.rfind(prefix, 0) != 0) return 0;
  try {
    return std::stoll(system.substr(prefix.size()));
  } catch (...) {
    return 0;
  }
}

bool IsRejoin(const CaseSpec& s) { return IsRejoinSystem(s.system); }

// Fresh CURVE keys for a case: the broker's pair (and its public key for
// the peers), one pair for every client and server process, and a keys file
// that lets that principal call and serve every service.
std::string WriteCurveKeys(const std::string& dir) {
  using transport::GenerateKeyPair;
  using transport::WriteKeyFile;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return "cannot create " + dir + ": " + ec.message();
  auto broker = GenerateKeyPair();
  auto peer = GenerateKeyPair();
  if (!broker.ok()) return broker.status().ToString();
  if (!peer.ok()) return peer.status().ToString();
  for (Status s : {WriteKeyFile(CurveBrokerKey(dir), *broker, true),
                   WriteKeyFile(CurveBrokerPublic(dir), *broker, false),
                   WriteKeyFile(CurvePeerKey(dir), *peer, true)}) {
    if (!s.ok()) return s.ToString();
  }
  std::FILE* f = std::fopen(CurveKeysFile(dir).c_str(), "w");
  if (f == nullptr) return "cannot write " + CurveKeysFile(dir);
  std::fprintf(f, "principal %s key %s\nallow %s call *\nallow %s serve *\n",
               kCurvePrincipal, peer->public_key.c_str(), kCurvePrincipal,
               kCurvePrincipal);
  return std::fclose(f) == 0 ? "" : "cannot write " + CurveKeysFile(dir);
}

const std::string& ExternalServerBin(const CaseSpec& s,
                                     const Environment& env) {
  return s.system == "nats" ? env.nats_server_bin : env.mosquitto_bin;
}

std::uint64_t ClientSessionsPerProcess(const CaseSpec& s) {
  return IsRejoin(s) ? std::max<std::uint64_t>(s.sessions_per_process, 1) : 1;
}

std::int64_t DrainMs(const CaseSpec& s) {
  if (IsRejoin(s)) return s.kills.empty() ? 5000 : 10000;
  if (IsExternalSystem(s.system)) return 2000;
  const std::int64_t timer = LazyTimerMs(s.system);
  if (timer > 0) return 3 * timer + 500;
  return s.abandon_ms + 200;
}

std::uint64_t Capacity(const CaseSpec& s) {
  if (s.requests > 0) return s.requests + 1;
  const double per_second = 400000.0;  // well above any client's rate here
  const auto want = static_cast<std::uint64_t>(s.seconds * per_second) + 4096;
  const std::uint64_t limit =
      s.max_records > 0 ? s.max_records : std::uint64_t{1} << 27;
  return std::min<std::uint64_t>(want, limit);
}

void SleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

struct Live {
  pid_t broker = -1;
  std::vector<pid_t> servers;
  std::vector<pid_t> clients;
  std::vector<pid_t> idle;
};

struct KillRecord {
  KillEvent event;
  std::int64_t kill_ns = 0;
  std::int64_t restart_ns = 0;
  bool done = false;
};

class CaseRun {
 public:
  CaseRun(const CaseSpec& spec, const Environment& env, int run)
      : spec_(spec), env_(env), run_(run) {}

  CaseResult Run(const Progress& progress);

 private:
  bool Prepare();
  std::vector<std::string> BrokerArgv(int restarts) const;
  RoleArgs ArgsFor(const std::string& role, std::uint64_t index) const;
  pid_t StartBroker(int restarts);
  pid_t StartServer(std::uint64_t index, bool restart);
  pid_t StartClient(std::uint64_t index, bool restart);
  void DoKill(KillRecord& k);
  void StopAll();
  void Compute();
  // An unanswered operation of client `c` that a kill of that client's
  // process took before it was journaled (CaseResult::unjournaled_at_kill).
  bool UnjournaledAtKill(std::uint64_t c, const ClientHeader& h,
                         const OpRecord& r, std::uint32_t executions) const;
  std::string LostNote(std::uint64_t c, std::uint64_t op, const ClientHeader& h,
                       const OpRecord& r, std::uint32_t executions) const;
  void RunIdle(const Progress& progress);
  std::string CurveDir() const { return dir_ + "/curve"; }
  void Fail(std::string why) {
    result_.ok = false;
    if (!result_.error.empty()) result_.error += "; ";
    result_.error += std::move(why);
  }

  const CaseSpec& spec_;
  const Environment& env_;
  int run_;
  CaseResult result_;
  std::string dir_;
  std::string endpoint_;
  std::string back_endpoint_;
  std::uint64_t capacity_ = 0;
  Control control_;
  Live live_;
  std::vector<KillRecord> kills_;
  int broker_restarts_ = 0;
  std::int64_t go_ns_ = 0;
  std::int64_t end_ns_ = 0;
};

bool CaseRun::Prepare() {
  std::ostringstream name;
  static int counter = 0;
  name << env_.workdir << "/case-" << ++counter << "-" << spec_.system << "-r"
       << run_;
  dir_ = name.str();
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::create_directories(dir_, ec);
  if (ec) {
    Fail("cannot create " + dir_ + ": " + ec.message());
    return false;
  }
  capacity_ = Capacity(spec_);
  control_ = Control(ControlPath(dir_), true);
  if (!control_.ok()) {
    Fail("cannot map the control file");
    return false;
  }
  if (IsExternalSystem(spec_.system)) {
    const std::string why =
        ExternalUnavailable(spec_.system, ExternalServerBin(spec_, env_));
    if (!why.empty()) {
      Fail(spec_.system + " skipped: " + why);
      return false;
    }
    if (spec_.kind != "load") {
      Fail(spec_.system + ": load cases only");
      return false;
    }
  }
  if (spec_.kind == "load") {
    // Kills need the time each operation first ran (Compute).
    ExecCounters exec(ExecPath(dir_), spec_.sessions, capacity_, true,
                      /*with_times=*/!spec_.kills.empty());
    if (!exec.ok()) {
      Fail("cannot map the execution counters");
      return false;
    }
    for (std::uint64_t c = 0; c < spec_.sessions; ++c) {
      ClientLog log(ClientLogPath(dir_, c), capacity_, true);
      if (!log.ok()) {
        Fail("cannot map a client log");
        return false;
      }
    }
  }
  if (IsCurveSystem(spec_.system)) {
    if (!transport::CurveAvailable()) {
      Fail(spec_.system + " skipped: libzmq has no CURVE");
      return false;
    }
    if (!env_.endpoint.empty()) {
      Fail(spec_.system + ": not with --endpoint (the case makes its keys)");
      return false;
    }
    if (const std::string why = WriteCurveKeys(CurveDir()); !why.empty()) {
      Fail(why);
      return false;
    }
  }
  if (IsRejoin(spec_) && !env_.endpoint.empty()) {
    endpoint_ = env_.endpoint;
  } else {
    endpoint_ = "tcp://127.0.0.1:" + std::to_string(FreePort());
    int back = FreePort();
    while (endpoint_ == "tcp://127.0.0.1:" + std::to_string(back)) {
      back = FreePort();
    }
    back_endpoint_ = "tcp://127.0.0.1:" + std::to_string(back);
  }
  return true;
}

std::vector<std::string> CaseRun::BrokerArgv(int restarts) const {
  char loss[32];
  std::snprintf(loss, sizeof loss, "%.6f", spec_.loss);
  std::vector<std::string> argv = {
      env_.broker_bin,
      "--endpoint",
      endpoint_,
      "--inject-loss",
      loss,
      "--seed",
      std::to_string(spec_.seed * 1000 + static_cast<std::uint64_t>(restarts))};
  if (spec_.system == "rejoin-oracle")
    argv.push_back("--inject-loss-redeliver");
  if (IsCurveSystem(spec_.system)) {
    argv.insert(argv.end(), {"--curve-key", CurveBrokerKey(CurveDir()),
                             "--keys", CurveKeysFile(CurveDir())});
  }
  auto names = [](const std::string& arg, const std::string& flag) {
    return arg == flag || arg.rfind(flag + "=", 0) == 0;
  };
  bool own_roster = false;
  bool own_log_level = false;
  for (const std::string& a : env_.broker_args) {
    argv.push_back(a);
    own_roster = own_roster || names(a, "--roster");
    own_log_level = own_log_level || names(a, "--log-level");
  }
  if (!own_log_level) {
    argv.push_back("--log-level");
    argv.push_back("warn");
  }
  if (env_.broker_roster && !own_roster) {
    // Kept across the case's broker restarts, like the journals.
    argv.push_back("--roster");
    argv.push_back(dir_ + "/roster");
  }
  if (spec_.kind == "idle") {
    argv.push_back("--heartbeat-ms");
    argv.push_back("1000");
  }
  return argv;
}

RoleArgs CaseRun::ArgsFor(const std::string& role, std::uint64_t index) const {
  RoleArgs a;
  a.role = role;
  a.index = index;
  a.endpoint = endpoint_;
  a.back_endpoint = back_endpoint_;
  a.dir = dir_;
  a.clients = spec_.sessions;
  a.sessions_per_process = ClientSessionsPerProcess(spec_);
  a.capacity = capacity_;
  a.window = spec_.window;
  a.size = spec_.size;
  a.requests = spec_.requests;
  a.drain_ms = DrainMs(spec_);
  a.durability = spec_.durability;
  a.concurrency = spec_.concurrency;
  a.inline_handlers = spec_.inline_handlers;
  a.timeout_ms = LazyTimerMs(spec_.system);
  a.abandon_ms = spec_.abandon_ms;
  a.loss = spec_.loss;
  a.seed = spec_.seed;
  a.qos = static_cast<std::uint64_t>(MqttQos(spec_.system));
  a.blocking = spec_.system == "rejoin-call";
  if (IsCurveSystem(spec_.system)) a.curve_dir = CurveDir();
  return a;
}

pid_t CaseRun::StartBroker(int restarts) {
  if (IsRejoin(spec_)) {
    if (!env_.endpoint.empty()) return -1;
    return Spawn(BrokerArgv(restarts), dir_ + "/broker.out");
  }
  if (IsExternalSystem(spec_.system)) {
    const int port = std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1));
    return Spawn(ExternalServerArgv(spec_.system,
                                    ExternalServerBin(spec_, env_), dir_, port),
                 dir_ + "/broker.out");
  }
  RoleArgs a = ArgsFor("raw-broker", 0);
  a.seed = spec_.seed * 1000 + static_cast<std::uint64_t>(restarts);
  return Spawn(a.ToArgv(env_.self), dir_ + "/broker.out");
}

pid_t CaseRun::StartServer(std::uint64_t index, bool restart) {
  RoleArgs a = ArgsFor(IsRejoin(spec_) ? "rejoin-server"
                       : IsExternalSystem(spec_.system)
                           ? ExternalRole(spec_.system, false)
                           : "raw-worker",
                       index);
  a.restart = restart;
  return Spawn(a.ToArgv(env_.self),
               dir_ + "/server-" + std::to_string(index) + ".out");
}

pid_t CaseRun::StartClient(std::uint64_t index, bool restart) {
  RoleArgs a = ArgsFor(IsRejoin(spec_) ? "rejoin-client"
                       : IsExternalSystem(spec_.system)
                           ? ExternalRole(spec_.system, true)
                           : "raw-client",
                       index);
  a.restart = restart;
  return Spawn(a.ToArgv(env_.self),
               dir_ + "/client-" + std::to_string(index) + ".out");
}

void CaseRun::DoKill(KillRecord& k) {
  k.done = true;
  const std::string& role = k.event.role;
  ProcessUsage& usage = result_.roles[role];
  if (role == "broker") {
    if (live_.broker <= 0) {
      result_.notes.push_back("broker kill skipped: external broker");
      return;
    }
    k.kill_ns = NowNs();
    KillAndReap(live_.broker, usage);
    k.restart_ns = NowNs();
    live_.broker = StartBroker(++broker_restarts_);
  } else if (role == "server" && !live_.servers.empty()) {
    k.kill_ns = NowNs();
    KillAndReap(live_.servers[0], usage);
    k.restart_ns = NowNs();
    live_.servers[0] = StartServer(0, true);
  } else if (role == "client" && !live_.clients.empty()) {
    if (live_.clients[0] <= 0) {
      result_.notes.push_back("client kill skipped: client 0 already done");
      return;
    }
    k.kill_ns = NowNs();
    KillAndReap(live_.clients[0], usage);
    k.restart_ns = NowNs();
    live_.clients[0] = StartClient(0, true);
  }
}

void CaseRun::StopAll() {
  KillAndReap(live_.broker, result_.roles["broker"]);
  live_.broker = -1;
  for (pid_t& p : live_.servers) KillAndReap(p, result_.roles["server"]);
  for (pid_t& p : live_.clients) KillAndReap(p, result_.roles["client"]);
  for (pid_t& p : live_.idle) KillAndReap(p, result_.roles["idle"]);
  live_ = Live();
  if (result_.roles["broker"].processes == 0) result_.roles.erase("broker");
}

CaseResult CaseRun::Run(const Progress& progress) {
  result_.spec = spec_;
  result_.runs = 1;
  if (!Prepare()) return result_;
  if (spec_.kind == "idle") {
    RunIdle(progress);
    StopAll();
    if (!env_.keep_files) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
    return result_;
  }
  const std::int64_t t0 = NowNs();
  live_.broker = StartBroker(0);
  for (std::uint64_t i = 0; i < spec_.servers; ++i) {
    live_.servers.push_back(StartServer(i, false));
  }
  const std::uint64_t per = ClientSessionsPerProcess(spec_);
  for (std::uint64_t i = 0; i * per < spec_.sessions; ++i) {
    live_.clients.push_back(StartClient(i, false));
  }
  // Start barrier: every client has had one answer through the system.
  ControlBlock& cb = control_.block();
  const std::int64_t ready_limit = NowNs() + 30000000000;
  while (Load(cb.ready) < spec_.sessions) {
    if (NowNs() > ready_limit) {
      Fail("clients not ready within 30 s (see " + dir_ + ")");
      StopAll();
      return result_;
    }
    for (pid_t& p : live_.clients) {
      int st = 0;
      if (p > 0 && TryReap(p, result_.roles["client"], &st)) {
        p = -1;
        Fail("a client exited during warm-up (see " + dir_ + ")");
      }
    }
    if (!result_.ok) {
      StopAll();
      return result_;
    }
    SleepMs(2);
  }
  go_ns_ = NowNs() + 5000000;
  end_ns_ = spec_.requests > 0
                ? 0
                : go_ns_ + static_cast<std::int64_t>(spec_.seconds * 1e9);
  Store(cb.end_ns, end_ns_);
  Store(cb.go_ns, go_ns_);
  for (const KillEvent& e : spec_.kills) kills_.push_back({e, 0, 0, false});

  const double expected_s = EstimateSeconds(spec_);
  const std::int64_t hard_limit =
      (end_ns_ != 0 ? end_ns_ : go_ns_ + 600000000000) +
      DrainMs(spec_) * 1000000 + 20000000000;
  std::int64_t next_sample = go_ns_;
  std::int64_t next_progress = 0;
  for (;;) {
    const std::int64_t now = NowNs();
    for (KillRecord& k : kills_) {
      if (!k.done &&
          now >= go_ns_ + static_cast<std::int64_t>(k.event.at_s * 1e9)) {
        if (end_ns_ != 0 && now >= end_ns_) {
          k.done = true;
          result_.notes.push_back(k.event.role +
                                  " kill skipped: after the end");
          continue;
        }
        DoKill(k);
      }
    }
    bool all_done = true;
    for (pid_t& p : live_.clients) {
      if (p <= 0) continue;
      int st = 0;
      if (TryReap(p, result_.roles["client"], &st)) {
        p = -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
          Fail("a client failed (see " + dir_ + ")");
        }
      } else {
        all_done = false;
      }
    }
    if (all_done) break;
    if (now > hard_limit) {
      Fail("clients did not finish in time");
      break;
    }
    if (spec_.rss_curve && live_.broker > 0 && now >= next_sample) {
      result_.broker_rss.emplace_back(static_cast<double>(now - go_ns_) / 1e9,
                                      ReadStatusKib(live_.broker, "VmRSS"));
      next_sample = now + 100000000;
    }
    if (progress && now >= next_progress) {
      progress(std::min(1.0, static_cast<double>(now - t0) / 1e9 / expected_s));
      next_progress = now + 100000000;
    }
    SleepMs(2);
  }
  StopAll();
  Compute();
  if (!env_.keep_files && result_.ok) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  return result_;
}

bool CaseRun::UnjournaledAtKill(std::uint64_t c, const ClientHeader& h,
                                const OpRecord& r,
                                std::uint32_t executions) const {
  if (!IsRejoin(spec_) || executions != 0 || Load(h.collect_done) == 0 ||
      Load(h.collect_failures) != 0) {
    return false;
  }
  // Issued by the killed process: before it was reaped. (SIGKILL lands a
  // little after kill_ns, and the process may issue calls until then.)
  for (const KillRecord& k : kills_) {
    if (k.event.role == "client" && c < ClientSessionsPerProcess(spec_) &&
        k.kill_ns != 0 && r.send_ns < k.restart_ns) {
      return true;
    }
  }
  return false;
}

std::string CaseRun::LostNote(std::uint64_t c, std::uint64_t op,
                              const ClientHeader& h, const OpRecord& r,
                              std::uint32_t executions) const {
  std::string note =
      "lost: client " + std::to_string(c) + " op " + std::to_string(op) +
      " sent at " + Fmt("%.3f", static_cast<double>(r.send_ns - go_ns_) / 1e9) +
      " s, executions " + std::to_string(executions) + ", state " +
      std::to_string(r.state) + ", collect_done " +
      std::to_string(Load(h.collect_done)) + ", collect_failures " +
      std::to_string(Load(h.collect_failures));
  for (const KillRecord& k : kills_) {
    if (k.kill_ns == 0) continue;
    note += ", " + k.event.role + " killed at " +
            Fmt("%.3f", static_cast<double>(k.kill_ns - go_ns_) / 1e9) + " s";
  }
  return note;
}

void CaseRun::Compute() {
  ExecCounters exec(ExecPath(dir_), spec_.sessions, capacity_, false);
  std::vector<double> latencies;
  std::uint64_t answers_window = 0;
  std::uint64_t answers_total = 0;
  std::uint64_t completed_in_window = 0;
  std::int64_t last_done = 0;
  std::vector<std::int64_t> first_after(kills_.size(), 0);
  constexpr int kLostNotes = 3;
  int lost_notes = 0;
  for (std::uint64_t c = 0; c < spec_.sessions; ++c) {
    ClientLog log(ClientLogPath(dir_, c), capacity_, false);
    if (!log.ok()) {
      Fail("cannot read client log");
      return;
    }
    const ClientHeader& h = log.header();
    answers_window += h.answers_in_window;
    answers_total += h.answers_total;
    result_.resends += h.resends;
    result_.journal_commits += h.journal_commits;
    result_.journal_records += h.journal_records;
    result_.abandoned += h.abandoned;
    result_.errors += h.errors;
    last_done = std::max(last_done, h.last_done_ns);
    const std::uint64_t started = std::min(h.next_op, capacity_);
    if (spec_.requests == 0 && started == capacity_) {
      // The per-operation records ran out before the case's end: the
      // session stopped issuing there, which the rates below average over.
      const OpRecord& last = log.op(capacity_ - 1);
      result_.notes.push_back(
          "session " + std::to_string(c) + " used all " +
          std::to_string(capacity_) + " operation records at " +
          Fmt("%.0f", static_cast<double>(last.send_ns - go_ns_) / 1e9) +
          " s and issued nothing after that");
    }
    const std::uint64_t scan = std::min(started + spec_.window + 8, capacity_);
    for (std::uint64_t i = 0; i < scan; ++i) {
      const OpRecord& r = log.op(i);
      const std::uint32_t count = exec.ok() ? exec.Count(c, i) : 0;
      result_.executions += count;
      if (count > 1) result_.duplicate_executions += count - 1;
      const auto state = static_cast<OpState>(r.state);
      const bool answered_ok = r.done_ns != 0;
      const bool issued = answered_ok || state == OpState::kIssued ||
                          state == OpState::kAbandoned ||
                          state == OpState::kFailed;
      if (!issued) continue;
      ++result_.issued;
      if (answered_ok) {
        ++result_.completed;
        if (count == 0) ++result_.unexecuted_completions;
        latencies.push_back(static_cast<double>(r.done_ns - r.send_ns) / 1e3);
        if (end_ns_ == 0 || r.done_ns <= end_ns_) ++completed_in_window;
      } else if (state != OpState::kFailed) {
        if (UnjournaledAtKill(c, h, r, count)) {
          ++result_.unjournaled_at_kill;
        } else {
          ++result_.lost;
          // Why it counts as lost, for whoever reads the report (the
          // baselines lose operations by design).
          if (IsRejoin(spec_) && lost_notes < kLostNotes) {
            ++lost_notes;
            result_.notes.push_back(LostNote(c, i, h, r, count));
          }
        }
      }
      for (std::size_t k = 0; k < kills_.size(); ++k) {
        const KillRecord& kr = kills_[k];
        if (kr.kill_ns == 0) continue;
        if (kr.event.role == "client" && c >= ClientSessionsPerProcess(spec_)) {
          continue;  // sessions of another client process
        }
        if (!answered_ok || r.send_ns >= kr.kill_ns ||
            r.done_ns < kr.restart_ns) {
          continue;
        }
        // After a server or broker kill, an answer that had already left
        // the server (executed before the kill) may still arrive from the
        // network or the client's queue after the restart; that is not a
        // recovery. Only operations that ran after the kill count.
        if (kr.event.role != "client" && exec.ok() &&
            exec.FirstRunNs(c, i) <= kr.kill_ns) {
          continue;
        }
        if (first_after[k] == 0 || r.done_ns < first_after[k]) {
          first_after[k] = r.done_ns;
        }
      }
    }
  }
  if (end_ns_ != 0) {
    result_.seconds = static_cast<double>(end_ns_ - go_ns_) / 1e9;
    (void)answers_total;
  } else {
    result_.seconds =
        std::max(1e-9, static_cast<double>(last_done - go_ns_) / 1e9);
    answers_window = answers_total;
  }
  result_.throughput_rps =
      static_cast<double>(answers_window) / result_.seconds;
  result_.goodput_rps =
      static_cast<double>(completed_in_window) / result_.seconds;
  std::sort(latencies.begin(), latencies.end());
  result_.p50_us = Percentile(latencies, 0.50);
  result_.p90_us = Percentile(latencies, 0.90);
  result_.p99_us = Percentile(latencies, 0.99);
  result_.p999_us = Percentile(latencies, 0.999);
  result_.max_us = latencies.empty() ? 0 : latencies.back();
  result_.cdf = CdfPoints(latencies, 60);
  for (std::size_t k = 0; k < kills_.size(); ++k) {
    if (kills_[k].kill_ns == 0) continue;
    if (first_after[k] == 0) {
      result_.recovery_ms.push_back(std::nullopt);
    } else {
      result_.recovery_ms.push_back(
          static_cast<double>(first_after[k] - kills_[k].restart_ns) / 1e6);
    }
  }
}

void CaseRun::RunIdle(const Progress& progress) {
  live_.broker = StartBroker(0);
  if (live_.broker <= 0) {
    Fail("idle case needs its own broker");
    return;
  }
  if (!IsRejoin(spec_)) {
    // The raw broker only answers through a worker.
    ExecCounters exec(ExecPath(dir_), spec_.sessions, capacity_, true);
    live_.servers.push_back(StartServer(0, false));
  }
  SleepMs(300);
  const long before = ReadStatusKib(live_.broker, "VmRSS");
  // rejoin with --sessions-per-process N: N library sessions per process on
  // one ClientConnection. Otherwise one connection per session, 2,500 per
  // process.
  const std::uint64_t per_process = ClientSessionsPerProcess(spec_) > 1
                                        ? ClientSessionsPerProcess(spec_)
                                        : 2500;
  const std::uint64_t n = spec_.idle_sessions;
  for (std::uint64_t i = 0, left = n; left > 0; ++i) {
    RoleArgs a = ArgsFor(IsRejoin(spec_) ? "idle" : "raw-idle", i);
    a.idle_sessions = std::min(left, per_process);
    a.seed = spec_.seed * 7919 + i;
    left -= a.idle_sessions;
    live_.idle.push_back(Spawn(a.ToArgv(env_.self),
                               dir_ + "/idle-" + std::to_string(i) + ".out"));
  }
  const std::int64_t t0 = NowNs();
  const std::int64_t limit = t0 + 60000000000;
  while (Load(control_.block().idle_welcomed) < n) {
    if (NowNs() > limit) {
      Fail("only " + std::to_string(Load(control_.block().idle_welcomed)) +
           " idle sessions welcomed within 60 s");
      return;
    }
    if (progress)
      progress(0.8 * static_cast<double>(Load(control_.block().idle_welcomed)) /
               static_cast<double>(n));
    SleepMs(50);
  }
  const double welcomed_s = static_cast<double>(NowNs() - t0) / 1e9;
  // Idle for a while with every session heartbeating, sampling the RSS.
  long peak = 0;
  const std::int64_t end =
      NowNs() + static_cast<std::int64_t>(spec_.seconds * 1e9);
  while (NowNs() < end) {
    const long rss = ReadStatusKib(live_.broker, "VmRSS");
    peak = std::max(peak, rss);
    result_.broker_rss.emplace_back(static_cast<double>(NowNs() - t0) / 1e9,
                                    rss);
    if (progress)
      progress(0.8 + 0.2 * (1.0 - static_cast<double>(end - NowNs()) /
                                      (spec_.seconds * 1e9)));
    SleepMs(100);
  }
  result_.idle_broker_rss_kib = peak;
  result_.seconds = spec_.seconds;
  char note[160];
  std::snprintf(
      note, sizeof note,
      "%llu sessions welcomed in %.1f s; broker VmRSS %ld KiB before, "
      "%ld KiB with them",
      static_cast<unsigned long long>(n), welcomed_s, before, peak);
  result_.notes.push_back(note);
}

}  // namespace

CaseResult Aggregate(std::vector<CaseResult> runs) {
  CaseResult out = runs.front();
  if (runs.size() == 1) return out;
  auto median = [&](auto field) {
    std::vector<double> v;
    for (const CaseResult& r : runs) v.push_back(field(r));
    return Median(v);
  };
  out.runs = static_cast<int>(runs.size());
  out.seconds = median([](const CaseResult& r) { return r.seconds; });
  out.throughput_rps =
      median([](const CaseResult& r) { return r.throughput_rps; });
  out.goodput_rps = median([](const CaseResult& r) { return r.goodput_rps; });
  out.p50_us = median([](const CaseResult& r) { return r.p50_us; });
  out.p90_us = median([](const CaseResult& r) { return r.p90_us; });
  out.p99_us = median([](const CaseResult& r) { return r.p99_us; });
  out.p999_us = median([](const CaseResult& r) { return r.p999_us; });
  out.max_us = median([](const CaseResult& r) { return r.max_us; });
  out.idle_broker_rss_kib = static_cast<long>(median([](const CaseResult& r) {
    return static_cast<double>(r.idle_broker_rss_kib);
  }));
  // The CDF of the median-p50 run stands for the case.
  std::vector<std::size_t> order(runs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return runs[a].p50_us < runs[b].p50_us;
  });
  out.cdf = runs[order[order.size() / 2]].cdf;
  out.issued = out.completed = out.lost = out.duplicate_executions = 0;
  out.executions = out.errors = out.resends = out.abandoned = 0;
  out.journal_commits = out.journal_records = 0;
  out.unexecuted_completions = 0;
  out.unjournaled_at_kill = 0;
  out.recovery_ms.clear();
  out.notes.clear();
  out.roles.clear();
  std::map<std::string, std::vector<double>> cpu, rss;
  std::map<std::size_t, std::vector<double>> recovery;
  for (const CaseResult& r : runs) {
    if (!r.ok) {
      out.ok = false;
      out.error = r.error;
    }
    out.issued += r.issued;
    out.completed += r.completed;
    out.lost += r.lost;
    out.duplicate_executions += r.duplicate_executions;
    out.executions += r.executions;
    out.errors += r.errors;
    out.resends += r.resends;
    out.journal_commits += r.journal_commits;
    out.journal_records += r.journal_records;
    out.abandoned += r.abandoned;
    out.unexecuted_completions += r.unexecuted_completions;
    out.unjournaled_at_kill += r.unjournaled_at_kill;
    for (const std::string& n : r.notes) out.notes.push_back(n);
    for (const auto& [role, u] : r.roles) {
      cpu[role].push_back(u.cpu_s);
      rss[role].push_back(static_cast<double>(u.peak_rss_kib));
      out.roles[role].processes = u.processes;
    }
    for (std::size_t k = 0; k < r.recovery_ms.size(); ++k) {
      // A recovery that never happened counts as +infinity in the median.
      recovery[k].push_back(r.recovery_ms[k].value_or(INFINITY));
    }
  }
  for (auto& [role, u] : out.roles) {
    u.cpu_s = Median(cpu[role]);
    u.peak_rss_kib = static_cast<long>(Median(rss[role]));
  }
  for (auto& [k, v] : recovery) {
    const double m = Median(v);
    out.recovery_ms.push_back(std::isinf(m) ? std::nullopt
                                            : std::optional<double>(m));
  }
  return out;
}

bool IsKnownSystem(const std::string& system) {
  return IsRejoinSystem(system) || system == "zmq-raw" ||
         system == "zmq-raw-curve" || LazyTimerMs(system) > 0 ||
         IsExternalSystem(system);
}

bool IsRejoinSystem(const std::string& system) {
  return system == "rejoin" || system == "rejoin-oracle" ||
         system == "rejoin-curve" || system == "rejoin-call";
}

bool IsCurveSystem(const std::string& system) {
  return system == "rejoin-curve" || system == "zmq-raw-curve";
}

std::optional<std::vector<KillEvent>> ParseKills(const std::string& text) {
  std::vector<KillEvent> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const std::size_t at = item.find('@');
    if (at == std::string::npos) return std::nullopt;
    KillEvent e;
    e.role = item.substr(0, at);
    if (e.role != "server" && e.role != "broker" && e.role != "client") {
      return std::nullopt;
    }
    std::string when = item.substr(at + 1);
    if (!when.empty() && when.back() == 's') when.pop_back();
    try {
      std::size_t used = 0;
      e.at_s = std::stod(when, &used);
      if (used != when.size() || e.at_s < 0) return std::nullopt;
    } catch (...) {
      return std::nullopt;
    }
    out.push_back(e);
  }
  return out;
}

double EstimateSeconds(const CaseSpec& spec) {
  if (spec.kind == "idle") {
    return 2.0 + spec.seconds + static_cast<double>(spec.idle_sessions) / 4000;
  }
  double run = spec.requests > 0 ? 2.0 : spec.seconds;
  const std::int64_t timer = LazyTimerMs(spec.system);
  if (timer > 0 && spec.loss > 0) run += static_cast<double>(timer) / 1000;
  return 0.6 + run;
}

CaseResult RunOnce(const CaseSpec& spec, const Environment& env, int run,
                   const Progress& progress) {
  CaseSpec one = spec;
  one.seed = spec.seed + static_cast<std::uint64_t>(run);
  CaseRun r(one, env, run);
  CaseResult result = r.Run(progress);
  result.spec = spec;
  return result;
}

CaseResult RunCase(const CaseSpec& spec, const Environment& env,
                   const Progress& progress) {
  std::vector<CaseResult> runs;
  const int n = std::max(1, spec.repeat);
  for (int i = 0; i < n; ++i) {
    runs.push_back(RunOnce(spec, env, i, [&](double f) {
      if (progress) progress((static_cast<double>(i) + f) / n);
    }));
  }
  return Aggregate(std::move(runs));
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ::close(fd);
  return port;
}

}  // namespace rejoin::bench
