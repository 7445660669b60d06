// The client loop the third-party baselines share (NATS, MQTT): one thread
// keeps `window` requests in flight through a transport of two calls, with
// the same warm-up, start barrier, drain and counting as the zmq-raw client
// (raw_roles.cpp). No request is ever resent or abandoned: these systems run
// over TCP without injected loss, so an operation still unanswered when the
// drain ends counts as lost.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "roles.h"

namespace rejoin::bench {

class WindowTransport {
 public:
  virtual ~WindowTransport() = default;
  // Sends one request whose payload starts with its tag; false when the
  // system refused it.
  virtual bool Send(const std::string& payload) = 0;
  // Waits up to `timeout_ms` for answers and hands the tag of each one to
  // `answered` (also with 0: whatever already arrived). False when the
  // connection is gone.
  virtual bool Poll(int timeout_ms,
                    const std::function<void(std::uint64_t)>& answered) = 0;
};

// Runs client session a.index through `t`; returns the exit code.
int RunWindowClient(const RoleArgs& a, WindowTransport& t);

}  // namespace rejoin::bench
