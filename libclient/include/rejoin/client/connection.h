// rejoin::ClientConnection: one connection to the broker, and one I/O thread,
// for several client sessions of a process.
//
// A Client opened with ClientOptions::connection carries its session over
// this connection instead of a socket and thread of its own. Each session
// is still admitted, fenced, recovered and journaled on its own (PROTOCOL.md
// §1.4): sharing changes only how many connections the broker keeps and how
// many threads the process runs. A process with thousands of sessions needs
// one connection instead of thousands; with a SharedJournal beside it, the
// I/O thread also commits the records of all its sessions together.
//
// Threading: the callbacks of every session on the connection run on its one
// I/O thread, one after another; a callback that blocks stalls them all.
// A Client must not be destroyed on that thread (from inside a callback).
// The connection lives as long as the ClientConnection object or any Client
// using it, whichever lasts longest.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "rejoin/proto/curve_options.h"
#include "rejoin/proto/status.h"

namespace rejoin {

namespace client_internal {
class Hub;
}

class ClientConnection {
 public:
  // Creates the socket, starts connecting to `endpoint` and starts the I/O
  // thread; with `curve` enabled the connection speaks CurveZMQ (the keys
  // are read here). Errors: kInvalidArgument (an endpoint libzmq rejects,
  // a bad key file), kNotFound (a key file), kUnavailable (no CURVE in
  // libzmq), kIoError.
  static Result<std::shared_ptr<ClientConnection>> Open(
      const std::string& endpoint, const CurveOptions& curve = {});

  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  const std::string& endpoint() const;
  // Clients currently using the connection.
  std::size_t sessions() const;

 private:
  explicit ClientConnection(std::shared_ptr<client_internal::Hub> hub);
  friend class Client;
  std::shared_ptr<client_internal::Hub> hub_;
};

}  // namespace rejoin
