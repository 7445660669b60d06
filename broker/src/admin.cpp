// AdminServer and StatusJson (rejoin/broker/admin.h).
#include "rejoin/broker/admin.h"

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "rejoin/proto/breakpoint.h"
#include "rejoin/transport/link.h"

namespace rejoin {

struct AdminServer::Sockets {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::rep};
};

std::string StatusJson(const BrokerStatus& st) {
  using nlohmann::json;
  const BrokerStats& s = st.stats;
  json counters = {
      {"requests", s.requests},
      {"responses", s.responses},
      {"forwarded_resends", s.forwarded_resends},
      {"responses_replayed", s.responses_replayed},
      {"replays_held", s.replays_held},
      {"probes", s.probes},
      {"probes_ended", s.probes_ended},
      {"recover_messages", s.recover_messages},
      {"state_exchanges", s.state_exchanges},
      {"moved", s.moved},
      {"answered_in_doubt", s.answered_in_doubt},
      {"answered_errors", s.answered_errors},
      {"orphans", s.orphans},
      {"injected_drops", s.injected_drops},
      {"malformed", s.malformed},
      {"bad_version", s.bad_version},
      {"unknown_type", s.unknown_type},
      {"too_large", s.too_large},
      {"unknown_peer", s.unknown_peer},
      {"fenced", s.fenced},
      {"duplicate_identity", s.duplicate_identity},
      {"protocol_violations", s.protocol_violations},
      {"servers_silent", s.servers_silent},
      {"reports_asked_again", s.reports_asked_again},
      {"refused_session_quota", s.refused_session_quota},
      {"refused_sessions", s.refused_sessions},
      {"refused_reported_sessions", s.refused_reported_sessions},
      {"refused_unacked", s.refused_unacked},
      {"refused_queue_bytes", s.refused_queue_bytes},
      {"refused_memory", s.refused_memory},
      {"refused_connection", s.refused_connection},
      {"expired_reported_sessions", s.expired_reported_sessions},
      {"forgotten_sessions", s.forgotten_sessions},
      {"forgotten_dropped", s.forgotten_dropped},
      {"forgotten_routed", s.forgotten_routed},
      {"forgotten_in_doubt", s.forgotten_in_doubt},
      {"conflicts", s.conflicts},
      {"accept_failures", s.accept_failures},
      {"connections_shed", s.connections_shed},
      {"not_authorized", s.not_authorized},
      {"revoked_messages", s.revoked_messages},
  };
  json decisions = json::object();
  for (std::size_t a = 0; a < kActionCount; ++a) {
    decisions[std::string(ActionName(static_cast<Action>(a)))] =
        st.decisions[a];
  }
  json answered = json::object();
  json errors = json::object();
  for (std::size_t c = 0; c < kWireCodeCount; ++c) {
    const auto code = static_cast<ErrorCode>(c);
    if (!IsWireCode(code) || code == ErrorCode::kOk) continue;
    const std::string name(ErrorCodeName(code));
    if (st.answered_by_code[c] != 0) answered[name] = st.answered_by_code[c];
    if (st.errors_by_code[c] != 0) errors[name] = st.errors_by_code[c];
  }
  json services = json::array();
  for (const ServiceStatus& v : st.services) {
    services.push_back({{"name", v.name},
                        {"registered", v.registered},
                        {"servers", v.servers},
                        {"credit", v.credit},
                        {"queued", v.queued},
                        {"queued_bytes", v.queued_bytes}});
  }
  json servers = json::array();
  for (const ServerStatus& v : st.servers) {
    servers.push_back({{"id", v.id},
                       {"alive", v.alive},
                       {"reported", v.reported},
                       {"incarnation", v.incarnation},
                       {"credit", v.credit},
                       {"in_flight", v.in_flight},
                       {"services", v.services}});
  }
  json connections = json::array();
  for (const ConnectionStatus& v : st.connections) {
    connections.push_back({{"peer", v.peer},
                           {"role", v.server ? "server" : "client"},
                           {"server_id", v.server_id},
                           {"sessions", v.sessions},
                           {"silent", v.silent}});
  }
  json latency = {{"bounds_us", st.latency_bounds_us},
                  {"cumulative", st.latency_cumulative},
                  {"count", st.latency_count},
                  {"sum_us", st.latency_sum_us}};
  json out = {
      {"epoch", st.epoch},
      {"endpoint", st.endpoint},
      {"uptime_ms", st.uptime_ms},
      {"grace",
       {{"active", st.in_grace},
        {"remaining_ms", st.grace_remaining_ms},
        {"last_ms", s.grace_ms},
        {"ended_early", s.grace_ended_early != 0},
        {"roster_servers", s.roster_servers}}},
      {"sessions", s.sessions},
      {"connections_count", s.connections},
      {"servers_alive", s.servers},
      {"tracked_operations", st.tracked_operations},
      {"retained_bytes", s.retained_bytes},
      {"services", services},
      {"servers", servers},
      {"connections", connections},
      {"decisions", decisions},
      {"answered_by_code", answered},
      {"errors_sent_by_code", errors},
      {"dispatch_to_answer", latency},
      {"counters", counters},
  };
  // Ids are printable ASCII (PROTOCOL.md §8), so dump never meets invalid
  // UTF-8; replace anyway rather than throw.
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

Result<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& endpoint, Broker* broker) {
  if (Status s = transport::CheckEndpoint(endpoint, /*bind=*/true); !s.ok()) {
    return s;
  }
  std::unique_ptr<AdminServer> server(new AdminServer());
  server->broker_ = broker;
  server->sockets_ = std::make_unique<Sockets>();
  try {
    zmq::socket_t& sock = server->sockets_->socket;
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::maxmsgsize, std::int64_t{1024});
    sock.bind(endpoint);
    server->bound_ = sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kIoError,
                  "admin endpoint " + endpoint + ": " + e.what());
  }
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

AdminServer::~AdminServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void AdminServer::Serve() {
  zmq::socket_t& sock = sockets_->socket;
  while (!stop_.load()) {
    try {
      zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      zmq::message_t request;
      if (!sock.recv(request, zmq::recv_flags::dontwait)) continue;
      // A REP socket must answer every request, multipart or not.
      while (request.more()) {
        zmq::message_t rest;
        if (!sock.recv(rest, zmq::recv_flags::dontwait)) break;
        request = std::move(rest);
      }
      std::string reply;
      if (request.to_string_view() == "status") {
        auto st = broker_->status(std::chrono::milliseconds(2000));
        reply = st.ok()
                    ? StatusJson(*st)
                    : nlohmann::json{{"error", st.status().ToString()}}.dump();
      } else if (request.to_string_view() == "reload-keys") {
        const Status s = broker_->ReloadKeys();
        reply = s.ok() ? nlohmann::json{{"reloaded", true}}.dump()
                       : nlohmann::json{{"error", s.ToString()}}.dump();
      } else {
        reply =
            nlohmann::json{
                {"error", "unknown request; ask \"status\" or \"reload-keys\""}}
                .dump();
      }
      sock.send(zmq::buffer(reply), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // EINTR or a context ending: look at stop_ again.
    }
  }
}

}  // namespace rejoin
