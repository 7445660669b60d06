// The server's loop (io_loop.h): the operations' messages and finished
// handlers go to the core, which decides; the loop, the connection to the
// broker and the turn discipline are in connection.cpp.
#include "io_loop.h"

#include <functional>
#include <string>
#include <utility>

#include "log.h"

namespace rejoin::server_internal {

IoLoop::IoLoop(const ServerOptions& options,
               const std::vector<ServiceOptions>& services,
               std::unique_ptr<Journal> journal, std::unique_ptr<Link> link,
               zmq::context_t& context, WorkerPool& pool, Counters& counters)
    : options_(options),
      journal_(std::move(journal)),
      link_(std::move(link)),
      context_(context),
      pool_(pool),
      counters_(counters),
      incarnation_(journal_->incarnation()),
      core_(options, services, *journal_, core_outbox_, counters, Clock::now()),
      // A process that restarted has returned (FLOWS §5); one whose journal
      // holds operations has something to report even on a first start.
      conn_(LinkTimers(options.heartbeat),
            incarnation_ > 1 || HoldsOperations(journal_->state()),
            journal_->journal_id() ^ (incarnation_ << 32) ^
                std::hash<std::string>{}(options.server_id)) {}

IoLoop::~IoLoop() = default;

void IoLoop::Dispatch(Message& m, std::string_view payload,
                      Clock::time_point now) {
  const MessageType type = TypeOf(m);
  switch (type) {
    case MessageType::kWelcome:
      OnWelcome(std::get<Welcome>(m), now);
      return;
    case MessageType::kRequest:
      core_.OnRequest(std::get<Request>(m), payload, now);
      CheckCore();
      return;
    case MessageType::kAck:
      core_.OnAck(std::get<Ack>(m), now);
      CheckCore();
      return;
    case MessageType::kHeartbeat:
      OnHeartbeat(std::get<Heartbeat>(m), now);
      return;
    case MessageType::kRecover:
      core_.OnRecover(std::get<Recover>(m), now);
      CheckCore();
      return;
    case MessageType::kProbe:
      core_.OnProbe(std::get<Probe>(m), now);
      return;
    case MessageType::kError:
      OnError(std::get<Error>(m), now);
      return;
    case MessageType::kGoodbye:
      // The broker is leaving; its successor on the same endpoint gets a
      // HELLO as soon as libzmq reconnects, or at the next hello timer.
      Drive(EndpointEvent::kGoodbye, now);
      return;
    case MessageType::kHello:
    case MessageType::kResponse:
    case MessageType::kStateExchange:
    case MessageType::kProbeReply:
      break;
  }
  // Well-formed, but never sent to a server.
  Bump(counters_.malformed);
  if (LogOnce("unexpected:" + std::string(MessageTypeName(type)))) {
    Log().warn("server {}: dropped an unexpected {} from the broker",
               options_.server_id, MessageTypeName(type));
  }
}

bool IoLoop::TakeCompletions() {
  pool_.Take(completions_, pool_ready_);
  pool_ready_ = false;
  for (Completion& c : completions_) {
    --outstanding_;
    if (!failed_) core_.OnCompletion(std::move(c));
  }
  CheckCore();
  return !completions_.empty();
}

void IoLoop::CheckCore() {
  if (core_.failed()) Fail(core_.failure());
}

bool IoLoop::LogOnce(const std::string& key) {
  return logged_.insert(key).second;
}

}  // namespace rejoin::server_internal
