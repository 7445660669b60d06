// The processes of a benchmark case. rejoin-bench re-executes itself with a
// hidden `--role NAME` flag to become one of them; the orchestrator passes
// everything a role needs on the command line and the role reports through
// the shared files of shm.h, never through the library it measures.
//
// Roles:
//   raw-broker   zmq-raw / lazy-pirate broker: ROUTER front, ROUTER back,
//                round-robin over workers, seeded loss on every forward
//   raw-worker   plain worker: executes every request it gets, echoes it
//   raw-client   zmq-raw (no resend, slot freed after --abandon-ms) or
//                lazy-pirate (resend after --timeout-ms) client
//   rejoin-server  rejoin::Server with the counting handler
//   rejoin-client  rejoin::Client issuing a window of CallAsync
//   idle         many rejoin sessions that say HELLO and then only heartbeat
//   raw-idle     many DEALERs on the raw broker, one echo each, then silent
//   nats-worker  NATS replier in a queue group (nats_roles.cpp)
//   nats-client  NATS requester keeping a window in flight
//   mqtt-worker  MQTT replier at QoS --qos (mqtt_roles.cpp)
//   mqtt-client  MQTT requester keeping a window in flight at QoS --qos
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rejoin::bench {

struct RoleArgs {
  std::string role;
  std::uint64_t index = 0;    // client or server index
  std::string endpoint;       // rejoin broker, or raw broker front
  std::string back_endpoint;  // raw broker back (workers)
  std::string dir;            // case directory (shared files)
  std::uint64_t clients = 1;  // sessions in the case
  // rejoin: sessions per client process, on one shared journal when > 1;
  // a client process's index counts processes, not sessions.
  std::uint64_t sessions_per_process = 1;
  std::uint64_t capacity = 0;  // ops per client in the shared files
  std::uint64_t window = 1;
  std::uint64_t size = 64;
  std::uint64_t requests = 0;    // per client; 0: run until end_ns
  std::int64_t drain_ms = 2000;  // after end_ns, wait this long for answers
  std::string durability = "process";
  std::uint64_t concurrency = 4;  // rejoin server credit (and threads)
  bool inline_handlers = false;   // rejoin handlers on the I/O thread
  std::int64_t timeout_ms = 0;    // lazy pirate resend timer; 0: zmq-raw
  std::int64_t abandon_ms = 100;  // zmq-raw: free a slot after this long
  double loss = 0;                // raw broker
  std::uint64_t seed = 1;
  bool restart = false;  // a restart after kill -9
  std::uint64_t idle_sessions = 0;
  std::int64_t deadline_ms = 60000;  // rejoin call deadline
  std::uint64_t qos = 1;             // MQTT
  // rejoin-call: `window` application threads per session, each calling the
  // blocking Client::Call, instead of completion callbacks on the library's
  // I/O thread issuing the next call.
  bool blocking = false;
  // CurveZMQ on every link (the "-curve" systems): the directory holding
  // the case's key files (CurveKeyDir); empty: plain TCP.
  std::string curve_dir;

  std::vector<std::string> ToArgv(const std::string& self) const;
};

// Runs the role named in argv (argv[1] == "--role"); returns the exit code.
int RunRole(int argc, char** argv);

// Paths of the shared files inside a case directory.
std::string ControlPath(const std::string& dir);
std::string ExecPath(const std::string& dir);
std::string ClientLogPath(const std::string& dir, std::uint64_t client);

// CURVE key files of a case (written by the orchestrator): the broker's pair
// and public key, one pair shared by every client and server process (the
// principal "bench"), and the broker's keys file.
std::string CurveBrokerKey(const std::string& curve_dir);
std::string CurveBrokerPublic(const std::string& curve_dir);
std::string CurvePeerKey(const std::string& curve_dir);
std::string CurveKeysFile(const std::string& curve_dir);
// The principal of the peers' key: session and server ids start with it.
inline constexpr char kCurvePrincipal[] = "bench";

}  // namespace rejoin::bench
