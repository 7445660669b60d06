// The systems measured through third-party brokers a user might pick
// instead of rejoin: "nats" (nats-server, libnats request/reply) and
// "mqtt-qos1" / "mqtt-qos2" (mosquitto, libmosquitto). Each case starts its
// own server process on a free 127.0.0.1 port with a configuration file in
// the case's directory, never a system service. They run when this build has
// the client library and the machine has the server; otherwise they are
// skipped with the reason.
#pragma once

#include <string>
#include <vector>

namespace rejoin::bench {

// "nats", "mqtt-qos1" or "mqtt-qos2".
bool IsExternalSystem(const std::string& system);
// The MQTT QoS of a system; 0 for the others.
int MqttQos(const std::string& system);
// The client and server roles of an external system ("nats-client", ...).
std::string ExternalRole(const std::string& system, bool client);

// Finds `name` on $PATH, then in /usr/sbin and /usr/local/sbin (where
// Debian puts nats-server and mosquitto); empty when absent.
std::string FindExecutable(const std::string& name);

// Why `system` cannot run here ("" when it can): the client library was not
// found when rejoin-bench was built, or `server_bin` is empty (not found).
std::string ExternalUnavailable(const std::string& system,
                                const std::string& server_bin);

// Writes the server's configuration into `dir` and returns its command
// line: `server_bin` listening on 127.0.0.1:`port`.
std::vector<std::string> ExternalServerArgv(const std::string& system,
                                            const std::string& server_bin,
                                            const std::string& dir, int port);

}  // namespace rejoin::bench
