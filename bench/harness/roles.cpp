// Role dispatch: the hidden command line of a role process, both ways.
#include "roles.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "raw_roles.h"
#include "rejoin_roles.h"
#ifdef REJOIN_BENCH_NATS
#include "nats_roles.h"
#endif
#ifdef REJOIN_BENCH_MQTT
#include "mqtt_roles.h"
#endif

namespace rejoin::bench {

std::string ControlPath(const std::string& dir) { return dir + "/control"; }
std::string ExecPath(const std::string& dir) { return dir + "/exec"; }
std::string ClientLogPath(const std::string& dir, std::uint64_t client) {
  return dir + "/client-" + std::to_string(client) + ".log";
}

std::vector<std::string> RoleArgs::ToArgv(const std::string& self) const {
  char loss_text[32];
  std::snprintf(loss_text, sizeof loss_text, "%.6f", loss);
  return {self,
          "--role",
          role,
          "--index",
          std::to_string(index),
          "--endpoint",
          endpoint,
          "--back-endpoint",
          back_endpoint,
          "--dir",
          dir,
          "--clients",
          std::to_string(clients),
          "--sessions-per-process",
          std::to_string(sessions_per_process),
          "--capacity",
          std::to_string(capacity),
          "--window",
          std::to_string(window),
          "--size",
          std::to_string(size),
          "--requests",
          std::to_string(requests),
          "--drain-ms",
          std::to_string(drain_ms),
          "--durability",
          durability,
          "--concurrency",
          std::to_string(concurrency),
          "--inline-handlers",
          inline_handlers ? "1" : "0",
          "--timeout-ms",
          std::to_string(timeout_ms),
          "--abandon-ms",
          std::to_string(abandon_ms),
          "--loss",
          loss_text,
          "--seed",
          std::to_string(seed),
          "--restart",
          restart ? "1" : "0",
          "--idle-sessions",
          std::to_string(idle_sessions),
          "--deadline-ms",
          std::to_string(deadline_ms),
          "--qos",
          std::to_string(qos),
          "--blocking",
          blocking ? "1" : "0",
          "--curve-dir",
          curve_dir};
}

std::string CurveBrokerKey(const std::string& d) { return d + "/broker.key"; }
std::string CurveBrokerPublic(const std::string& d) {
  return d + "/broker.pub";
}
std::string CurvePeerKey(const std::string& d) { return d + "/bench.key"; }
std::string CurveKeysFile(const std::string& d) { return d + "/keys"; }

int RunRole(int argc, char** argv) {
  // A role never outlives the orchestrator.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  RoleArgs a;
  int restart = 0;
  CLI::App app{"rejoin-bench role process"};
  app.add_option("--role", a.role)->required();
  app.add_option("--index", a.index);
  app.add_option("--endpoint", a.endpoint);
  app.add_option("--back-endpoint", a.back_endpoint);
  app.add_option("--dir", a.dir);
  app.add_option("--clients", a.clients);
  app.add_option("--sessions-per-process", a.sessions_per_process);
  app.add_option("--capacity", a.capacity);
  app.add_option("--window", a.window);
  app.add_option("--size", a.size);
  app.add_option("--requests", a.requests);
  app.add_option("--drain-ms", a.drain_ms);
  app.add_option("--durability", a.durability);
  app.add_option("--concurrency", a.concurrency);
  app.add_option("--inline-handlers", a.inline_handlers);
  app.add_option("--timeout-ms", a.timeout_ms);
  app.add_option("--abandon-ms", a.abandon_ms);
  app.add_option("--loss", a.loss);
  app.add_option("--seed", a.seed);
  app.add_option("--restart", restart);
  app.add_option("--idle-sessions", a.idle_sessions);
  app.add_option("--deadline-ms", a.deadline_ms);
  app.add_option("--qos", a.qos);
  app.add_option("--blocking", a.blocking);
  app.add_option("--curve-dir", a.curve_dir);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  a.restart = restart != 0;
  try {
    if (a.role == "raw-broker") return RunRawBroker(a);
    if (a.role == "raw-worker") return RunRawWorker(a);
    if (a.role == "raw-client") return RunRawClient(a);
    if (a.role == "rejoin-server") return RunRejoinServer(a);
    if (a.role == "rejoin-client") return RunRejoinClient(a);
    if (a.role == "idle") return RunIdleSessions(a);
    if (a.role == "raw-idle") return RunRawIdle(a);
#ifdef REJOIN_BENCH_NATS
    if (a.role == "nats-worker") return RunNatsWorker(a);
    if (a.role == "nats-client") return RunNatsClient(a);
#endif
#ifdef REJOIN_BENCH_MQTT
    if (a.role == "mqtt-worker") return RunMqttWorker(a);
    if (a.role == "mqtt-client") return RunMqttClient(a);
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rejoin-bench %s: %s\n", a.role.c_str(), e.what());
    return 4;
  }
  std::fprintf(stderr, "rejoin-bench: unknown role %s\n", a.role.c_str());
  return 2;
}

}  // namespace rejoin::bench
