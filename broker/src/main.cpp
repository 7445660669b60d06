// rejoin-broker: command-line front end. Parses flags, binds, serves until
// SIGINT/SIGTERM, then prints its counters.
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "event_log.h"
#include "rejoin/broker/admin.h"
#include "rejoin/broker/broker.h"
#include "rejoin/broker/fault_injection.h"
#include "rejoin/broker/metrics.h"
#include "rejoin/proto/prometheus.h"

namespace {

// Signals are waited for on a dedicated thread (sigwait), so the handler
// context never touches the broker.
void BlockStopSignals(sigset_t& set) {
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);  // reloads the keys file
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Connections cost descriptors: take all the hard limit allows.
void RaiseDescriptorLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) lim.rlim_cur = before;
  }
  spdlog::info("rejoin-broker: descriptor limit {} (was {}, hard {})",
               static_cast<unsigned long long>(lim.rlim_cur),
               static_cast<unsigned long long>(before),
               static_cast<unsigned long long>(lim.rlim_max));
}

}  // namespace

int main(int argc, char** argv) {
  rejoin::BrokerOptions options;
  // Loss injection for tests and benchmarks (--inject-loss, --seed).
  rejoin::FaultInjection faults;
  int heartbeat_ms = static_cast<int>(options.heartbeat.count());
  int grace_ms = static_cast<int>(options.grace.count());
  int probe_ms = static_cast<int>(options.probe.count());
  int replay_hold_ms = static_cast<int>(options.replay_hold.count());
  int lease_ms = static_cast<int>(options.lease.count());
  long long reported_expiry_ms = options.reported_session_expiry.count();
  std::string log_level = "info";
  std::string metrics_address;
  std::string admin_endpoint;
  std::string log_format = "text";

  CLI::App app{
      "rejoin-broker: routes requests between rejoin clients and "
      "servers and coordinates their recovery"};
  app.set_version_flag("--version",
                       std::string("rejoin-broker ") + REJOIN_VERSION);
  // Every flag may also come from a TOML file, under its long name without
  // the dashes (broker/dist/broker.toml); the command line wins.
  app.set_config("--config", "", "read flags from this TOML file");
  app.option_defaults()->group("Service");
  app.add_option("--endpoint", options.endpoint, "ZeroMQ endpoint to bind")
      ->capture_default_str();
  app.option_defaults()->group("Security (docs/SECURITY.md)");
  app.add_option("--curve-key", options.curve_key_file,
                 "the broker's CURVE key pair file (rejoin-keygen); with "
                 "--keys, every connection is encrypted and authenticated");
  app.add_option("--keys", options.keys_file,
                 "the keys file: which public keys may connect, as which "
                 "principal, to call or serve which services; re-read on "
                 "SIGHUP");
  app.add_flag("--insecure", options.insecure,
               "allow binding a non-loopback address without CURVE (anyone "
               "who reaches it can act as any client or server)");
  app.option_defaults()->group("Service");
  app.option_defaults()->group("Timing and recovery");
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--grace-ms", grace_ms,
                 "after start, how long servers get to report what they hold")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.option_defaults()->group("Service");
  app.add_option("--roster", options.roster,
                 "keep the ids of registered servers in this file; after a "
                 "restart the grace period ends once every listed server has "
                 "returned and reported (missing or corrupt file: full grace "
                 "period)");
  app.option_defaults()->group("Timing and recovery");
  app.add_option("--probe-ms", probe_ms,
                 "an unanswered operation older than this is probed")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--lease-ms", lease_ms,
                 "how long operations wait for a dead server")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--replay-hold-ms", replay_hold_ms,
                 "a replayed answer waits this long at most for other "
                 "traffic to the same client (0: sent at once)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.option_defaults()->group("Limits (FLOWS.md section 10)");
  app.add_option("--max-sessions", options.max_sessions,
                 "client sessions the broker keeps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "largest payload accepted")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-outstanding", options.max_outstanding,
                 "unanswered operations per session")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue", options.max_queue,
                 "requests queued per service")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-sessions-per-connection",
                 options.max_sessions_per_connection,
                 "client sessions one connection may carry")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-reported-sessions-per-server",
                 options.max_reported_sessions_per_server,
                 "sessions one server's state exchange may add")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--reported-session-expiry-ms", reported_expiry_ms,
                 "a session only servers reported, whose client never came, "
                 "is forgotten after this long idle")
      ->capture_default_str()
      ->check(CLI::Range(1, 2000000000));
  app.add_option("--max-forgotten-sessions", options.max_forgotten_sessions,
                 "forgotten sessions whose holding server is remembered")
      ->capture_default_str();
  app.add_option("--max-session-unacked", options.max_session_unacked,
                 "answers a session's client has not acknowledged")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-session-bytes", options.max_session_bytes,
                 "request/response bytes kept for one session")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-connection-outstanding",
                 options.max_connection_outstanding,
                 "unanswered operations of all sessions on one connection")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-connection-bytes", options.max_connection_bytes,
                 "request/response bytes kept for one connection's sessions")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue-bytes", options.max_queue_bytes,
                 "request bytes queued per service")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-memory-bytes", options.max_memory_bytes,
                 "request/response bytes the broker keeps overall")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.option_defaults()->group("Testing");
  app.add_option("--inject-loss", faults.loss,
                 "drop each REQUEST/RESPONSE the broker sends with this "
                 "probability (testing)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--seed", faults.seed, "seed for --inject-loss")
      ->capture_default_str();
  app.add_flag("--inject-loss-redeliver", faults.redeliver,
               "send each envelope --inject-loss draws again at the next "
               "turn instead of losing it: the zero-detection bound of loss "
               "recovery (benchmarks)");
  app.add_option("--metrics", metrics_address,
                 "serve Prometheus metrics over HTTP at this address, e.g. "
                 "127.0.0.1:9464 (path /metrics); off by default")
      ->group("Operation");
  app.add_option("--admin", admin_endpoint,
                 "answer rejoin-ctl broker status on this ZeroMQ endpoint, "
                 "e.g. tcp://127.0.0.1:5556 (keep it on loopback); off by "
                 "default")
      ->group("Operation");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->group("Operation");
  app.add_option("--log-format", log_format,
                 "text, or json: one JSON object per line (recovery events "
                 "with their fields)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}))
      ->group("Operation");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_format == "json") rejoin::SetJsonLogs();
  RaiseDescriptorLimit();
  options.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  options.grace = std::chrono::milliseconds(grace_ms);
  options.probe = std::chrono::milliseconds(probe_ms);
  options.lease = std::chrono::milliseconds(lease_ms);
  options.replay_hold = std::chrono::milliseconds(replay_hold_ms);
  options.reported_session_expiry =
      std::chrono::milliseconds(reported_expiry_ms);

  sigset_t stop_signals;
  BlockStopSignals(stop_signals);  // before any thread starts

  auto broker = rejoin::Broker::Bind(options, faults);
  if (!broker.ok()) {
    std::fprintf(stderr, "rejoin-broker: %s\n",
                 broker.status().ToString().c_str());
    return 1;
  }
  // The exporter reads the broker's thread-safe stats on its own HTTP
  // threads, only when scraped.
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<rejoin::PrometheusCollectable> metrics;
  if (!metrics_address.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address, 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rejoin-broker: --metrics %s: %s\n",
                   metrics_address.c_str(), e.what());
      return 1;
    }
    rejoin::Broker* b = broker->get();
    metrics = std::make_shared<rejoin::PrometheusCollectable>([b] {
      auto st = b->status(std::chrono::milliseconds(1000));
      return st.ok() ? rejoin::BrokerMetrics(*st)
                     : rejoin::BrokerMetrics(b->stats());
    });
    exposer->RegisterCollectable(metrics);
    spdlog::info("rejoin-broker: metrics at http://{}/metrics",
                 metrics_address);
  }
  std::unique_ptr<rejoin::AdminServer> admin;
  if (!admin_endpoint.empty()) {
    auto started = rejoin::AdminServer::Start(admin_endpoint, broker->get());
    if (!started.ok()) {
      std::fprintf(stderr, "rejoin-broker: --admin: %s\n",
                   started.status().ToString().c_str());
      return 1;
    }
    admin = std::move(*started);
    spdlog::info("rejoin-broker: admin endpoint {}", admin->bound_endpoint());
  }
  std::thread waiter([&] {
    for (;;) {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      if (sig != SIGHUP) break;
      if (options.keys_file.empty()) {
        spdlog::info("rejoin-broker: SIGHUP: no keys file to reload");
        continue;
      }
      (void)(*broker)->ReloadKeys();  // logs what it did
    }
    (*broker)->Stop();
  });
  rejoin::Status status = (*broker)->Run();
  // Run can also end on its own (socket error): release the waiter.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();

  const rejoin::BrokerStats s = (*broker)->stats();
  spdlog::info(
      "rejoin-broker: stopped ({}); sessions={} connections={} requests={} "
      "responses={} probes={} recover={} replayed={} resends={} malformed={} "
      "injected_drops={} grace_ms={} grace_ended_early={} roster_servers={}",
      status.ToString(), s.sessions, s.connections, s.requests, s.responses,
      s.probes, s.recover_messages, s.responses_replayed, s.forwarded_resends,
      s.malformed, s.injected_drops, s.grace_ms, s.grace_ended_early,
      s.roster_servers);
  return status.ok() ? 0 : 1;
}
