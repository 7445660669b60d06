// MQTT 3.1.1 request/reply at QoS a.qos in both directions: client i
// publishes its requests to "bench/req/<i>" and subscribes to
// "bench/rep/<i>"; servers share "bench/req/+" ($share, so each request goes
// to one of them) and publish the echoed payload to the matching reply
// topic. The payload's tag is the correlation id. Both ends disable Nagle
// and lift libmosquitto's limit of 20 messages in flight, as a user tuning
// for throughput would; one thread per process drives the library
// (mosquitto_loop), as in the zmq-raw roles.
#include "mqtt_roles.h"

#include <mosquitto.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "shm.h"
#include "window_client.h"

namespace rejoin::bench {
namespace {

constexpr char kShared[] = "$share/bench/bench/req/+";

// "tcp://127.0.0.1:1883" -> host and port.
bool HostPort(const std::string& endpoint, std::string& host, int& port) {
  const std::size_t scheme = endpoint.find("://");
  const std::string rest =
      scheme == std::string::npos ? endpoint : endpoint.substr(scheme + 3);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return false;
  host = rest.substr(0, colon);
  port = std::atoi(rest.c_str() + colon + 1);
  return port > 0;
}

// A connected client with id `id`, retrying while the broker starts;
// nullptr after 20 s.
mosquitto* Connect(const RoleArgs& a, const std::string& id, void* obj) {
  mosquitto_lib_init();
  mosquitto* m = mosquitto_new(id.c_str(), true, obj);
  if (m == nullptr) return nullptr;
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
  std::string host;
  int port = 0;
  if (!HostPort(a.endpoint, host, port)) return nullptr;
  const std::int64_t give_up = NowNs() + 20000000000;
  int rc = MOSQ_ERR_SUCCESS;
  while ((rc = mosquitto_connect(m, host.c_str(), port, 60)) !=
         MOSQ_ERR_SUCCESS) {
    if (NowNs() > give_up) {
      std::fprintf(stderr, "mqtt: cannot connect to %s:%d: %s\n", host.c_str(),
                   port, mosquitto_strerror(rc));
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return m;
}

// Subscribes and drives the library until the broker has acknowledged it.
bool Subscribe(mosquitto* m, const std::string& topic, int qos) {
  static bool acked = false;
  acked = false;
  mosquitto_subscribe_callback_set(
      m, [](mosquitto*, void*, int, int, const int*) { acked = true; });
  if (mosquitto_subscribe(m, nullptr, topic.c_str(), qos) != MOSQ_ERR_SUCCESS) {
    return false;
  }
  const std::int64_t give_up = NowNs() + 10000000000;
  while (!acked && NowNs() < give_up) {
    if (mosquitto_loop(m, 50, 1) != MOSQ_ERR_SUCCESS) return false;
  }
  return acked;
}

struct Worker {
  ExecCounters* exec;
  int qos;
};

void OnRequest(mosquitto* m, void* obj, const mosquitto_message* msg) {
  auto* w = static_cast<Worker*>(obj);
  w->exec->Execute(
      ReadTag(msg->payload, static_cast<std::size_t>(msg->payloadlen)));
  // bench/req/<i> -> bench/rep/<i>
  std::string reply = msg->topic;
  const std::size_t slash = reply.rfind('/');
  if (slash == std::string::npos) return;
  reply = "bench/rep" + reply.substr(slash);
  mosquitto_publish(m, nullptr, reply.c_str(), msg->payloadlen, msg->payload,
                    w->qos, false);
}

class MqttTransport final : public WindowTransport {
 public:
  explicit MqttTransport(const RoleArgs& a)
      : request_topic_("bench/req/" + std::to_string(a.index)),
        reply_topic_("bench/rep/" + std::to_string(a.index)),
        qos_(static_cast<int>(a.qos)) {}

  bool Start(const RoleArgs& a) {
    m_ = Connect(a, "bench-c" + std::to_string(a.index), this);
    if (m_ == nullptr) return false;
    mosquitto_message_callback_set(
        m_, [](mosquitto*, void* obj, const mosquitto_message* msg) {
          auto* self = static_cast<MqttTransport*>(obj);
          if (self->answered_ != nullptr) {
            (*self->answered_)(ReadTag(
                msg->payload, static_cast<std::size_t>(msg->payloadlen)));
          }
        });
    return Subscribe(m_, reply_topic_, qos_);
  }

  bool Send(const std::string& payload) override {
    return mosquitto_publish(m_, nullptr, request_topic_.c_str(),
                             static_cast<int>(payload.size()), payload.data(),
                             qos_, false) == MOSQ_ERR_SUCCESS;
  }

  bool Poll(int timeout_ms,
            const std::function<void(std::uint64_t)>& answered) override {
    answered_ = &answered;
    const int rc = mosquitto_loop(m_, timeout_ms, 1);
    answered_ = nullptr;
    return rc == MOSQ_ERR_SUCCESS;
  }

 private:
  std::string request_topic_;
  std::string reply_topic_;
  int qos_;
  mosquitto* m_ = nullptr;
  const std::function<void(std::uint64_t)>* answered_ = nullptr;
};

}  // namespace

int RunMqttWorker(const RoleArgs& a) {
  ExecCounters exec(ExecPath(a.dir), a.clients, a.capacity, false);
  if (!exec.ok()) return 2;
  Worker w{&exec, static_cast<int>(a.qos)};
  mosquitto* m = Connect(a, "bench-s" + std::to_string(a.index), &w);
  if (m == nullptr) return 3;
  mosquitto_message_callback_set(m, OnRequest);
  if (!Subscribe(m, kShared, w.qos)) {
    std::fprintf(stderr, "mqtt worker: cannot subscribe\n");
    return 3;
  }
  for (;;) {
    const int rc = mosquitto_loop(m, 100, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "mqtt worker: %s\n", mosquitto_strerror(rc));
      return 3;
    }
  }
}

int RunMqttClient(const RoleArgs& a) {
  MqttTransport t(a);
  if (!t.Start(a)) return 3;
  return RunWindowClient(a, t);
}

}  // namespace rejoin::bench
