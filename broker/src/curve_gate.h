// CurveGate: the broker shell's side of CURVE (docs/SECURITY.md). It owns
// the ZAP handler (RFC 27), answered from the broker's poll loop, which lets
// in the keys the keys file lists and gives each connection its key as
// User-Id; the keys file in force and one a reload parsed, waiting for the
// broker's next turn; and, per connection, the key it authenticated with and
// its descriptor, so that a revoked key's connections can be closed.
//
// Threading: Reload() may be called from any thread; everything else from
// the broker's thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "access.h"
#include "rejoin/proto/status.h"
#include "rejoin/transport/wire.h"

namespace rejoin::broker_internal {

class CurveGate {
 public:
  // Reads the keys file and binds the ZAP handler in `context` (before the
  // ROUTER binds: libzmq 4.3 lets a CURVE peer in unchecked when no handler
  // is there). Errors as AccessPolicy::Load, kIoError for the bind.
  static Result<std::unique_ptr<CurveGate>> Open(zmq::context_t& context,
                                                 std::string keys_file);

  // For zmq_poll: ZMQ_POLLIN means AnswerZap has requests to answer.
  void* zap_handle() { return zap_.handle(); }
  void AnswerZap();

  // The keys file in force (the core keeps a pointer to it: after
  // TakeReload, give the core the new one).
  const AccessPolicy& policy() const { return *policy_; }
  // The principal of a message's sender, nullptr when its key is no longer
  // listed: then the caller closes its connection (Close).
  const std::string* PrincipalOf(const transport::Frames& frames);
  // Shuts down the descriptor of a connection whose key was revoked (libzmq
  // cannot close one peer of a ROUTER: it sees the connection end and
  // closes it on its own thread) and forgets it.
  void Close(const std::string& route, int fd);
  // The connection on `fd` closed: its descriptor may be reused, and must
  // never be shut down for the old connection's key.
  void Disconnected(int fd);

  // Reads and parses the keys file again; when it parses it waits for
  // TakeReload. Errors as AccessPolicy::Load (the old file stays).
  Status Reload();
  bool reload_waiting() const {
    return reload_waiting_.load(std::memory_order_acquire);
  }
  // Puts a waiting reload into force: the connections (route, descriptor)
  // whose key it no longer lists, which the caller closes.
  std::vector<std::pair<std::string, int>> TakeReload();

  std::uint64_t revoked_messages() const {
    return revoked_messages_.load(std::memory_order_relaxed);
  }

 private:
  CurveGate(zmq::context_t& context, std::string keys_file,
            std::shared_ptr<const AccessPolicy> policy);

  const std::string keys_file_;
  zmq::socket_t zap_;
  std::shared_ptr<const AccessPolicy> policy_;
  std::mutex reload_mutex_;
  std::shared_ptr<const AccessPolicy> reloaded_;  // under reload_mutex_
  std::atomic<bool> reload_waiting_{false};
  struct Peer {
    std::string key;
    int fd = -1;
  };
  std::unordered_map<std::string, Peer> peers_;  // by route
  // The sender PrincipalOf looked up last (nullptr: none): the messages of
  // a batch share it.
  std::string last_route_;
  std::string last_key_;
  int last_fd_ = -1;
  const std::string* last_principal_ = nullptr;
  std::atomic<std::uint64_t> revoked_messages_{0};
};

}  // namespace rejoin::broker_internal
