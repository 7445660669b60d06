// Tests of rejoin-bench itself: the shared counters, the percentile math, and
// the baselines, which must complete every request exactly once without loss
// and must not be slow by accident, since every ratio in the report divides by
// them. A tiny rejoin case checks the harness end to end. The NATS and MQTT
// baselines are tested whenever rejoin-bench was built with them; a missing
// nats-server or mosquitto then fails their tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "harness/case.h"
#include "harness/external.h"
#include "harness/report.h"
#include "harness/roles.h"
#include "harness/shm.h"
#include "harness/stats.h"
#include "harness/targets.h"

namespace rejoin::bench {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "bench-test-XXXXXX");
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Environment TestEnvironment(const TempDir& dir) {
  Environment env;
  env.self = REJOIN_BENCH_PATH;
  env.broker_bin = REJOIN_BENCH_BROKER_PATH;
  env.workdir = dir.path();
  env.nats_server_bin = FindExecutable("nats-server");
  env.mosquitto_bin = FindExecutable("mosquitto");
  return env;
}

CaseSpec Requests(const std::string& system, std::uint64_t window,
                  std::uint64_t requests, double loss) {
  CaseSpec s;
  s.system = system;
  s.window = window;
  s.requests = requests;
  s.loss = loss;
  return s;
}

TEST(Percentile, NearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 0.5), 50);
  EXPECT_EQ(Percentile(v, 0.9), 90);
  EXPECT_EQ(Percentile(v, 0.99), 99);
  EXPECT_EQ(Percentile(v, 0.999), 100);
  EXPECT_EQ(Percentile(v, 0), 1);
  EXPECT_EQ(Percentile(v, 1), 100);
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({7}, 0.999), 7);
}

TEST(Percentile, MedianOfOddAndEvenCounts) {
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 2, 3}), 2.5);
  EXPECT_EQ(Median({}), 0);
}

TEST(Percentile, CdfIsMonotoneAndEndsAtTheMaximum) {
  std::vector<double> v;
  for (int i = 1; i <= 10000; ++i) v.push_back(i);
  auto cdf = CdfPoints(v, 40);
  ASSERT_FALSE(cdf.empty());
  for (std::size_t i = 1; i < cdf.size(); ++i) {
    EXPECT_GE(cdf[i].first, cdf[i - 1].first);
    EXPECT_GE(cdf[i].second, cdf[i - 1].second);
  }
  EXPECT_EQ(cdf.back().first, 10000);
  EXPECT_EQ(cdf.back().second, 1.0);
}

TEST(SharedFiles, TagsRoundTrip) {
  const std::uint64_t tag = PackTag(513, 123456789);
  EXPECT_EQ(TagClient(tag), 513u);
  EXPECT_EQ(TagOp(tag), 123456789u);
  const std::string p = MakePayload(tag, 64);
  EXPECT_EQ(p.size(), 64u);
  EXPECT_EQ(ReadTag(p.data(), p.size()), tag);
  EXPECT_EQ(ReadTag(p.data(), 4), kWarmupTag);
}

TEST(SharedFiles, CountersSurviveTheWriterAndCountEveryExecution) {
  TempDir dir;
  const std::string path = ExecPath(dir.path());
  {
    ExecCounters exec(path, 2, 1000, true);
    ASSERT_TRUE(exec.ok());
  }
  // Two other mappings (as two server processes would have) write at once.
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&] {
      ExecCounters exec(path, 2, 1000, false);
      ASSERT_TRUE(exec.ok());
      for (std::uint64_t op = 0; op < 1000; ++op) exec.Execute(PackTag(1, op));
      exec.Execute(kWarmupTag);
      exec.Execute(PackTag(2, 0));     // no such client
      exec.Execute(PackTag(0, 5000));  // beyond capacity
    });
  }
  for (auto& t : writers) t.join();
  ExecCounters exec(path, 2, 1000, false);
  for (std::uint64_t op = 0; op < 1000; ++op) {
    EXPECT_EQ(exec.Count(1, op), 2u);
    EXPECT_EQ(exec.Count(0, op), 0u);
  }
}

TEST(SharedFiles, FirstRunTimesExistOnlyWhenAsked) {
  TempDir dir;
  const std::string path = ExecPath(dir.path());
  {
    ExecCounters plain(path, 3, 7, true);  // odd count: times stay aligned
    ASSERT_TRUE(plain.ok());
    plain.Execute(PackTag(2, 6));
    EXPECT_EQ(plain.FirstRunNs(2, 6), 0);
  }
  ExecCounters created(path, 3, 7, true, /*with_times=*/true);
  ASSERT_TRUE(created.ok());
  const std::int64_t before = NowNs();
  ExecCounters server(path, 3, 7, false);  // finds the times by the size
  server.Execute(PackTag(2, 6));
  const std::int64_t first = server.FirstRunNs(2, 6);
  EXPECT_GE(first, before);
  server.Execute(PackTag(2, 6));  // a second run keeps the first time
  EXPECT_EQ(created.FirstRunNs(2, 6), first);
  EXPECT_EQ(created.Count(2, 6), 2u);
  EXPECT_EQ(created.FirstRunNs(2, 5), 0);
}

TEST(SharedFiles, FirstAnswerIsTheCompletion) {
  TempDir dir;
  ClientLog log(ClientLogPath(dir.path(), 0), 10, true);
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(log.MarkAnswered(3, 100, 0));
  EXPECT_FALSE(log.MarkAnswered(3, 200, 0));
  EXPECT_EQ(log.op(3).done_ns, 100);
  EXPECT_EQ(log.op(3).answers, 2u);
  EXPECT_EQ(log.header().answers_total, 2u);
  EXPECT_FALSE(log.MarkAnswered(10, 1, 0));  // out of range
  // Answers after the end of the measured window are not throughput.
  EXPECT_TRUE(log.MarkAnswered(4, 300, 250));
  EXPECT_EQ(log.header().answers_in_window, 2u);
}

TEST(Kills, ScheduleParses) {
  auto k = ParseKills("server@2s,broker@4,client@6.5s");
  ASSERT_TRUE(k.has_value());
  ASSERT_EQ(k->size(), 3u);
  EXPECT_EQ((*k)[0].role, "server");
  EXPECT_EQ((*k)[1].at_s, 4);
  EXPECT_EQ((*k)[2].at_s, 6.5);
  EXPECT_FALSE(ParseKills("router@1s").has_value());
  EXPECT_FALSE(ParseKills("server@x").has_value());
}

TEST(ZmqRaw, WithoutLossCompletesEveryRequestExactlyOnce) {
  TempDir dir;
  CaseSpec spec = Requests("zmq-raw", 16, 20000, 0);
  spec.sessions = 2;
  CaseResult r = RunCase(spec, TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.issued, 40000u);
  EXPECT_EQ(r.completed, 40000u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.executions, 40000u);
  EXPECT_EQ(r.duplicate_executions, 0u);
  EXPECT_EQ(r.unexecuted_completions, 0u);
  // How fast is for docs/BENCHMARKS.md, not for a test on a shared machine.
  EXPECT_GT(r.throughput_rps, 0);
}

TEST(ZmqRaw, RunningOutOfOperationRecordsIsReported) {
  // A long soak at full rate can use up a session's records; the session
  // then stops issuing, and the rates average over the idle rest.
  TempDir dir;
  CaseSpec spec;
  spec.system = "zmq-raw";
  spec.window = 16;
  spec.seconds = 1;
  spec.max_records = 2000;
  CaseResult r = RunCase(spec, TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.issued, 2000u);
  EXPECT_EQ(r.completed, 2000u);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("session 0 used all 2000 operation records"),
            std::string::npos)
      << r.notes[0];
}

TEST(ZmqRaw, SynchronousLatencyIsSane) {
  TempDir dir;
  CaseResult r =
      RunCase(Requests("zmq-raw", 1, 2000, 0), TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.completed, 2000u);
  // The percentiles are consistent; their values depend on the machine.
  EXPECT_GT(r.p50_us, 0);
  EXPECT_LE(r.p50_us, r.p99_us);
  EXPECT_LE(r.p99_us, r.max_us);
}

TEST(ZmqRaw, LossLosesRequestsAndSaysHowMany) {
  TempDir dir;
  CaseSpec spec = Requests("zmq-raw", 32, 3000, 0.1);
  spec.abandon_ms = 50;
  CaseResult r = RunCase(spec, TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.issued, 3000u);
  EXPECT_EQ(r.lost + r.completed, r.issued);
  EXPECT_EQ(r.abandoned, r.lost);
  // Each request crosses the lossy hop twice: about 19 % never return.
  EXPECT_GT(r.lost, 3000u * 12 / 100);
  EXPECT_LT(r.lost, 3000u * 26 / 100);
  EXPECT_EQ(r.duplicate_executions, 0u);
}

TEST(LazyPirate, WithLossEventuallyCompletesEveryOperation) {
  TempDir dir;
  CaseResult r = RunCase(Requests("lazy-pirate-100", 16, 3000, 0.05),
                         TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.issued, 3000u);
  EXPECT_EQ(r.completed, 3000u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_GT(r.resends, 0u);
  // A lost response means the resend runs the operation again.
  EXPECT_GT(r.duplicate_executions, 0u);
  EXPECT_EQ(r.executions, r.completed + r.duplicate_executions);
}

TEST(LazyPirate, WithoutLossNeverResends) {
  TempDir dir;
  CaseResult r = RunCase(Requests("lazy-pirate-100", 8, 5000, 0),
                         TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.completed, 5000u);
  EXPECT_EQ(r.resends, 0u);
  EXPECT_EQ(r.duplicate_executions, 0u);
  // No rate is asserted: on a shared machine a test cannot say how fast
  // anything runs (docs/BENCHMARKS.md measures that); no resend above
  // already says the timer never fired.
  EXPECT_GT(r.throughput_rps, 0);
}

// A third-party baseline (NATS, MQTT QoS 1 / 2): two sessions keep 16
// requests in flight each; every request is answered, and ran once.
void ExpectEveryRequestAnsweredOnce(const std::string& system) {
  TempDir dir;
  CaseSpec spec = Requests(system, 16, 3000, 0);
  spec.sessions = 2;
  CaseResult r = RunCase(spec, TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.issued, 6000u);
  EXPECT_EQ(r.completed, 6000u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.executions, 6000u);
  EXPECT_EQ(r.duplicate_executions, 0u);
  EXPECT_EQ(r.unexecuted_completions, 0u);
  // Its own broker process was started, and reaped with the others.
  EXPECT_EQ(r.roles.count("broker"), 1u);
  EXPECT_GT(r.throughput_rps, 0);
}

// One synchronous session: every call answered, consistent percentiles.
void ExpectSaneSynchronousLatency(const std::string& system) {
  TempDir dir;
  CaseResult r =
      RunCase(Requests(system, 1, 500, 0), TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.completed, 500u);
  EXPECT_EQ(r.executions, 500u);
  EXPECT_GT(r.p50_us, 0);
  EXPECT_LE(r.p50_us, r.p99_us);
  EXPECT_LE(r.p99_us, r.max_us);
}

#ifdef REJOIN_BENCH_NATS
TEST(Nats, WindowedRequestsAreEachAnsweredOnce) {
  ExpectEveryRequestAnsweredOnce("nats");
}

TEST(Nats, SynchronousLatencyIsSane) { ExpectSaneSynchronousLatency("nats"); }
#endif

#ifdef REJOIN_BENCH_MQTT
TEST(MqttQos1, WindowedRequestsAreEachAnsweredOnce) {
  ExpectEveryRequestAnsweredOnce("mqtt-qos1");
}

TEST(MqttQos2, WindowedRequestsAreEachAnsweredOnce) {
  ExpectEveryRequestAnsweredOnce("mqtt-qos2");
}

TEST(MqttQos2, SynchronousLatencyIsSane) {
  ExpectSaneSynchronousLatency("mqtt-qos2");
}
#endif

TEST(External, MissingServerIsAFailureWithTheReason) {
  TempDir dir;
  Environment env = TestEnvironment(dir);
  env.nats_server_bin.clear();
  CaseResult r = RunCase(Requests("nats", 1, 10, 0), env, nullptr);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("nats skipped: "), std::string::npos) << r.error;
}

// Runs a rejoin case of `seconds` at `window` and `loss`, with `kills`;
// `sessions` client sessions, `per_process` of them in each client process.
CaseResult RunRejoin(std::uint64_t window, double seconds, double loss,
                     std::vector<KillEvent> kills = {},
                     std::uint64_t sessions = 1, std::uint64_t per_process = 1,
                     const std::string& durability = "process") {
  TempDir dir;
  CaseSpec spec;
  spec.system = "rejoin";
  spec.window = window;
  spec.seconds = seconds;
  spec.loss = loss;
  spec.kills = std::move(kills);
  spec.sessions = sessions;
  spec.sessions_per_process = per_process;
  spec.durability = durability;
  return RunCase(spec, TestEnvironment(dir), nullptr);
}

// Every operation rejoin accepted was answered, and ran exactly once.
void ExpectExactlyOnce(const CaseResult& r) {
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.completed, 0u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.duplicate_executions, 0u);
  EXPECT_EQ(r.unexecuted_completions, 0u);
}

TEST(Rejoin, KillsOfEveryRoleLoseNothingAndRunNothingTwice) {
  CaseResult r = RunRejoin(16, 2, 0.02,
                           {{"server", 0.4}, {"broker", 0.9}, {"client", 1.4}});
  ExpectExactlyOnce(r);
  EXPECT_EQ(r.recovery_ms.size(), 3u);
}

TEST(Rejoin, SessionsSharingAJournalSurviveAKillOfTheirProcess) {
  // Four sessions in two client processes, two per shared journal; the
  // process of sessions 0 and 1 is killed and started again.
  CaseResult r = RunRejoin(8, 1.5, 0.02, {{"client", 0.7}}, 4, 2, "sync");
  ExpectExactlyOnce(r);
  EXPECT_GT(r.journal_commits, 0u);
  EXPECT_GE(r.journal_records, r.journal_commits);
  EXPECT_EQ(r.recovery_ms.size(), 1u);
}

TEST(Rejoin, TinyLossyCaseLosesNothingAndRunsNothingTwice) {
  CaseResult r = RunRejoin(8, 0.5, 0.05);
  ExpectExactlyOnce(r);
  EXPECT_EQ(r.errors, 0u);
}

// A half-second case of `system` at window 16 and `loss`: every operation
// answered, each run once, no error.
void ExpectLossyCaseExactlyOnce(const std::string& system, double loss) {
  TempDir dir;
  CaseSpec spec;
  spec.system = system;
  spec.window = 16;
  spec.seconds = 0.5;
  spec.loss = loss;
  CaseResult r = RunCase(spec, TestEnvironment(dir), nullptr);
  ExpectExactlyOnce(r);
  EXPECT_EQ(r.errors, 0u);
}

// The blocking Call from application threads, with loss: every call
// answered once, run once, no error.
TEST(RejoinCall, BlockingCallersLoseNothingAndRunNothingTwice) {
  ExpectLossyCaseExactlyOnce("rejoin-call", 0.05);
}

TEST(RejoinOracle, RedeliveredLossLosesNothingAndRunsNothingTwice) {
  // Every envelope the 10 % loss draws arrives one broker turn late instead.
  ExpectLossyCaseExactlyOnce("rejoin-oracle", 0.1);
}

// CurveZMQ on every link, with the case's own keys: the broker's ZAP
// handler lets the bench principal in, its ids carry the principal, and
// nothing is lost or run twice; the raw baseline completes everything too.
TEST(RejoinCurve, EncryptedCaseLosesNothingAndRunsNothingTwice) {
  ExpectLossyCaseExactlyOnce("rejoin-curve", 0.05);
}

TEST(ZmqRawCurve, EncryptedBaselineCompletesEveryRequest) {
  TempDir dir;
  CaseResult r = RunCase(Requests("zmq-raw-curve", 16, 5000, 0),
                         TestEnvironment(dir), nullptr);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.completed, 5000u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.duplicate_executions, 0u);
}

CaseResult Reported(const std::string& system, std::uint64_t window,
                    double loss, double goodput) {
  CaseResult r;
  r.spec.system = system;
  r.spec.window = window;
  r.spec.loss = loss;
  r.goodput_rps = r.throughput_rps = goodput;
  r.cdf = {{100, 0.5}, {400, 1.0}};
  return r;
}

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos;
       at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

// `text` holds `row`; a failure shows both.
void ExpectHas(const std::string& text, std::string_view row) {
  EXPECT_NE(text.find(row), std::string::npos)
      << "missing: " << row << "\nin:\n"
      << text;
}

TEST(Report, ChartHasAGoodputPanelPerWindowAndTheLatencyCdf) {
  std::vector<CaseResult> cases = {
      Reported("rejoin", 1, 0, 3000), Reported("rejoin", 1, 0.1, 2000),
      Reported("zmq-raw", 1, 0, 4000), Reported("zmq-raw", 1, 0.1, 40),
      Reported("rejoin", 64, 0, 80000)};
  const std::string svg = ToSvg(cases);
  EXPECT_EQ(Count(svg, "goodput vs loss, window "), 2u);
  EXPECT_EQ(Count(svg, "latency CDF"), 1u);
  EXPECT_EQ(Count(svg, "broker RSS"), 0u);
  EXPECT_EQ(svg.rfind("</svg>\n"), svg.size() - 7);
}

TEST(Report, SoakCaseAddsTheBrokerRssCurve) {
  CaseResult soak = Reported("rejoin", 64, 0.01, 40000);
  for (int i = 0; i < 10; ++i) soak.broker_rss.push_back({i * 60.0, 8000 + i});
  const std::string svg = ToSvg({Reported("rejoin", 1, 0, 3000), soak});
  EXPECT_EQ(Count(svg, "rejoin broker RSS at full load"), 1u);
  // The curve's points: one per sample.
  const auto line = svg.rfind("<polyline");
  const auto end = svg.find("'/>", line);
  const std::string points = svg.substr(line, end - line);
  EXPECT_EQ(Count(points, ","), soak.broker_rss.size());
  const std::string json = ToJson(MachineInfo{}, {soak});
  ExpectHas(json, "\"broker_rss_kib_curve\": [[0, 8000], [60, 8001]");
}

TEST(Report, TenMinuteSoakWithAFlatCurveMeetsTheMemoryTarget) {
  CaseResult soak = Reported("rejoin", 64, 0, 100000);
  soak.spec.seconds = 600;
  // Sampled every 100 ms, the last sample a moment before the end.
  for (int i = 0; i < 6000; ++i) {
    soak.broker_rss.push_back({i * 0.1 + 0.001, i < 100 ? 7500 : 8200});
  }
  std::string md = TargetsMarkdown({soak});
  ExpectHas(md, "over 10.0 min | met |");
  // Growth over the run is reported as such.
  for (std::size_t i = 3000; i < soak.broker_rss.size(); ++i) {
    soak.broker_rss[i].second = 20000;
  }
  md = TargetsMarkdown({soak});
  ExpectHas(md, "over 10.0 min | **not met** |");
}

TEST(Targets, RatiosToEveryBaselineAndTheOracleArePrinted) {
  std::vector<CaseResult> cases = {Reported("rejoin", 64, 0, 100000),
                                   Reported("zmq-raw", 64, 0, 110000),
                                   Reported("nats", 64, 0, 20000),
                                   Reported("mqtt-qos2", 64, 0, 8000),
                                   Reported("rejoin", 64, 0.05, 90000),
                                   Reported("rejoin-oracle", 64, 0.05, 92000)};
  for (CaseResult& c : cases) c.spec.durability = "process";
  const std::string md = TargetsMarkdown(cases, {{"mqtt-qos1", "not here"}});
  ExpectHas(md,
            "| window 64 throughput >= 0.85 x zmq-raw | 100000 vs "
            "110000 ops/s = 0.91 x | met |");
  ExpectHas(md,
            "| window 64 throughput >= 4 x nats | 100000 vs 20000 "
            "ops/s = 5.00 x | met |");
  ExpectHas(md,
            "| window 64 throughput >= 20 x mqtt-qos2 | 100000 vs "
            "8000 ops/s = 12.50 x | **not met** |");
  ExpectHas(md, "skipped: mqtt-qos1: not here | skipped |");
  ExpectHas(md, "| window 1 p50 latency <= 1.1 x zmq-raw | not run | - |");
  ExpectHas(md, "| window 1 p50 latency <= nats p50 | not run | - |");
  ExpectHas(md,
            "| window 64 goodput at 5 % loss >= 0.95 x oracle | "
            "90000 / 92000 = 0.98");
  ExpectHas(md,
            "| window 64 goodput at 1 % loss >= 0.95 x oracle | "
            "not run | - |");
  // CURVE rows appear only when a -curve case ran.
  EXPECT_EQ(md.find("rejoin-curve"), std::string::npos) << md;
  cases.push_back(Reported("rejoin-curve", 64, 0, 80000));
  cases.back().spec.durability = "process";
  const std::string curve = TargetsMarkdown(cases, {});
  ExpectHas(curve,
            "| rejoin-curve window 64 throughput >= 0.7 x rejoin | "
            "80000 vs 100000 ops/s = 0.80 x | met |");
  ExpectHas(curve,
            "| rejoin-curve window 1 p50 latency <= 1.3 x rejoin | "
            "not run | - |");
  cases.pop_back();
  // The synchronous caller's rows appear only when rejoin-call ran.
  EXPECT_EQ(md.find("rejoin-call"), std::string::npos) << md;
  cases.push_back(Reported("rejoin", 1, 0, 4000));
  cases.back().p50_us = 200;
  cases.push_back(Reported("rejoin-call", 1, 0, 3500));
  cases.back().p50_us = 230;
  for (CaseResult& c : cases) c.spec.durability = "process";
  const std::string call = TargetsMarkdown(cases, {});
  ExpectHas(call,
            "| rejoin-call window 1 p50 latency vs rejoin (no "
            "target) | 230 vs 200 us = 1.15 x | - |");
  ExpectHas(call,
            "| rejoin-call window 1 p50 latency vs zmq-raw (no "
            "target) | not run | - |");
  cases.pop_back();
  cases.pop_back();
  const std::string json = TargetsJson(cases, {{"mqtt-qos1", "not here"}});
  ExpectHas(json, "\"skipped\": {\"mqtt-qos1\": \"not here\"}");
}

}  // namespace
}  // namespace rejoin::bench
