// NATS request/reply as an application would pipeline it: the client
// publishes each request with a reply subject (its own inbox) and reads the
// replies from one synchronous subscription on that inbox, keeping `window`
// requests in flight (natsConnection_Request would allow one at a time).
// Servers share the request subject in a queue group, so each request goes
// to one of them; each echoes the payload to the request's reply subject.
// Core NATS, no JetStream: at most once, as users pick it for request/reply.
#include "nats_roles.h"

#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "shm.h"
#include "window_client.h"

namespace rejoin::bench {
namespace {

constexpr char kSubject[] = "bench.req";
constexpr char kQueue[] = "bench";

// "tcp://127.0.0.1:4222" -> "nats://127.0.0.1:4222".
std::string NatsUrl(const std::string& endpoint) {
  const std::size_t scheme = endpoint.find("://");
  return "nats://" +
         (scheme == std::string::npos ? endpoint : endpoint.substr(scheme + 3));
}

// Connects, retrying while the server starts; nullptr after 20 s.
natsConnection* Connect(const RoleArgs& a, bool send_asap) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return nullptr;
  const std::string url = NatsUrl(a.endpoint);
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetSendAsap(opts, send_asap);
  natsOptions_SetNoEcho(opts, true);
  natsConnection* nc = nullptr;
  const std::int64_t give_up = NowNs() + 20000000000;
  while (natsConnection_Connect(&nc, opts) != NATS_OK) {
    nc = nullptr;
    if (NowNs() > give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  natsOptions_Destroy(opts);
  if (nc == nullptr) {
    std::fprintf(stderr, "nats: cannot connect to %s: %s\n", url.c_str(),
                 nats_GetLastError(nullptr));
  }
  return nc;
}

struct Worker {
  ExecCounters* exec;
};

void OnRequest(natsConnection* nc, natsSubscription*, natsMsg* msg,
               void* closure) {
  auto* w = static_cast<Worker*>(closure);
  const char* data = natsMsg_GetData(msg);
  const int len = natsMsg_GetDataLength(msg);
  w->exec->Execute(ReadTag(data, static_cast<std::size_t>(len)));
  if (const char* reply = natsMsg_GetReply(msg); reply != nullptr) {
    natsConnection_Publish(nc, reply, data, len);
  }
  natsMsg_Destroy(msg);
}

class NatsTransport final : public WindowTransport {
 public:
  NatsTransport(natsConnection* nc, natsSubscription* sub, std::string inbox)
      : nc_(nc), sub_(sub), inbox_(std::move(inbox)) {}

  bool Send(const std::string& payload) override {
    return natsConnection_PublishRequest(
               nc_, kSubject, inbox_.c_str(), payload.data(),
               static_cast<int>(payload.size())) == NATS_OK;
  }

  bool Poll(int timeout_ms,
            const std::function<void(std::uint64_t)>& answered) override {
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, timeout_ms);
    while (s == NATS_OK) {
      answered(ReadTag(natsMsg_GetData(msg),
                       static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
      natsMsg_Destroy(msg);
      msg = nullptr;
      s = natsSubscription_NextMsg(&msg, sub_, 0);
    }
    // No responders yet (warm-up) is an answer of no one: keep polling.
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS;
  }

 private:
  natsConnection* nc_;
  natsSubscription* sub_;
  std::string inbox_;
};

}  // namespace

int RunNatsWorker(const RoleArgs& a) {
  ExecCounters exec(ExecPath(a.dir), a.clients, a.capacity, false);
  if (!exec.ok()) return 2;
  // A replier sends each reply at once, as libnats recommends for it.
  natsConnection* nc = Connect(a, /*send_asap=*/true);
  if (nc == nullptr) return 3;
  Worker w{&exec};
  natsSubscription* sub = nullptr;
  if (natsConnection_QueueSubscribe(&sub, nc, kSubject, kQueue, OnRequest,
                                    &w) != NATS_OK ||
      natsConnection_Flush(nc) != NATS_OK) {
    std::fprintf(stderr, "nats worker: cannot subscribe: %s\n",
                 nats_GetLastError(nullptr));
    return 3;
  }
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));
}

int RunNatsClient(const RoleArgs& a) {
  // Window 1 is a synchronous caller: its request leaves at once, as
  // natsConnection_Request sends it; larger windows let libnats batch.
  natsConnection* nc = Connect(a, /*send_asap=*/a.window == 1);
  if (nc == nullptr) return 3;
  const std::string inbox = "_INBOX.bench." + std::to_string(a.index);
  natsSubscription* sub = nullptr;
  if (natsConnection_SubscribeSync(&sub, nc, inbox.c_str()) != NATS_OK ||
      natsConnection_Flush(nc) != NATS_OK) {
    std::fprintf(stderr, "nats client: cannot subscribe: %s\n",
                 nats_GetLastError(nullptr));
    return 3;
  }
  NatsTransport t(nc, sub, inbox);
  return RunWindowClient(a, t);
}

}  // namespace rejoin::bench
