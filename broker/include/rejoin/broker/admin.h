// The broker's admin endpoint: a ZeroMQ REP socket of its own, apart from
// the endpoint clients and servers use, that answers the request "status"
// with the broker's status (Broker::status) as one JSON document, and
// "reload-keys" by re-reading the keys file (Broker::ReloadKeys). It is what
// `rejoin-ctl broker status` and `rejoin-ctl broker reload-keys` ask. Off
// unless `rejoin-broker --admin` names an endpoint; bind it to loopback: anyone
// who reaches it reads the broker's sessions, servers and counters
// (libproto/FLOWS.md §11).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "rejoin/broker/broker.h"
#include "rejoin/proto/status.h"

namespace rejoin {

// The status as JSON (the format rejoin-ctl reads; FLOWS.md §11).
std::string StatusJson(const BrokerStatus& status);

class AdminServer {
 public:
  // Binds `endpoint` and serves on a thread of its own until destroyed.
  // `broker` must outlive the server. kInvalidArgument (endpoint),
  // kIoError (bind).
  static Result<std::unique_ptr<AdminServer>> Start(const std::string& endpoint,
                                                    Broker* broker);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  std::string bound_endpoint() const { return bound_; }

 private:
  AdminServer() = default;
  void Serve();
  struct Sockets;
  std::unique_ptr<Sockets> sockets_;
  Broker* broker_ = nullptr;
  std::string bound_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rejoin
