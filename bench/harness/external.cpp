// Locating and configuring the third-party servers.
#include "external.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rejoin::bench {

bool IsExternalSystem(const std::string& system) {
  return system == "nats" || MqttQos(system) > 0;
}

int MqttQos(const std::string& system) {
  if (system == "mqtt-qos1") return 1;
  if (system == "mqtt-qos2") return 2;
  return 0;
}

std::string ExternalRole(const std::string& system, bool client) {
  const std::string family = system == "nats" ? "nats" : "mqtt";
  return family + (client ? "-client" : "-worker");
}

std::string FindExecutable(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream in(path);
    std::string dir;
    while (std::getline(in, dir, ':')) {
      if (!dir.empty()) dirs.push_back(dir);
    }
  }
  dirs.push_back("/usr/sbin");
  dirs.push_back("/usr/local/sbin");
  for (const std::string& dir : dirs) {
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ExternalUnavailable(const std::string& system,
                                const std::string& server_bin) {
  const bool nats = system == "nats";
#ifdef REJOIN_BENCH_NATS
  const bool have_nats = true;
#else
  const bool have_nats = false;
#endif
#ifdef REJOIN_BENCH_MQTT
  const bool have_mqtt = true;
#else
  const bool have_mqtt = false;
#endif
  if (nats && !have_nats) {
    return "rejoin-bench was built without libnats (libnats-dev; "
           "scripts/setup.sh --bench installs it)";
  }
  if (!nats && !have_mqtt) {
    return "rejoin-bench was built without libmosquitto (libmosquitto-dev; "
           "scripts/setup.sh --bench installs it)";
  }
  if (server_bin.empty()) {
    return std::string(nats ? "nats-server" : "mosquitto") +
           " not found (scripts/setup.sh --bench installs it)";
  }
  return "";
}

std::vector<std::string> ExternalServerArgv(const std::string& system,
                                            const std::string& server_bin,
                                            const std::string& dir, int port) {
  if (system == "nats") {
    const std::string conf = dir + "/nats-server.conf";
    std::ofstream out(conf);
    out << "listen: 127.0.0.1:" << port << "\n"
        << "# request/reply only: no JetStream, no monitoring port\n";
    return {server_bin, "-c", conf};
  }
  const std::string conf = dir + "/mosquitto.conf";
  std::ofstream out(conf);
  // Nagle off and no cap on messages in flight to each client (default 20),
  // as a user tuning for throughput would; nothing kept on disk.
  out << "listener " << port << " 127.0.0.1\n"
      << "allow_anonymous true\n"
      << "persistence false\n"
      << "set_tcp_nodelay true\n"
      << "max_inflight_messages 0\n"
      << "max_queued_messages 0\n"
      << "log_dest stderr\n"
      << "log_type error\n"
      << "log_type warning\n";
  return {server_bin, "-c", conf};
}

}  // namespace rejoin::bench
