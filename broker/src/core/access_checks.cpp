// Principals (docs/SECURITY.md): with a keys file, every message comes from
// an authenticated principal, and the ids it names for itself must be in
// that principal's namespace (`name/...`). The rule is a function of the id
// alone, so it holds with a broker that keeps no durable state: after a
// restart, no principal can take another's session or server id, whatever
// it names and in whatever order the parties return. What a server names
// for others (the sessions of the requests it answers or reports) is
// checked where it is used: RESPONSE only from the server the operation
// went to, reports only of services it may serve (operations.cpp,
// tracking.cpp).
#include <string>

#include "core/broker_core.h"

namespace rejoin::broker_internal {

void BrokerCore::NotAuthorized(const std::string& route, std::string text,
                               MessageType ref, const SessionId& sid, Seq seq) {
  Bump(counters_.not_authorized);
  LogOnce("not-authorized:" + std::string(principal_) + ":" +
              std::to_string(static_cast<int>(ref)),
          "principal '" + Printable(principal_) + "': " + Printable(text));
  SendError(route, ErrorCode::kNotAuthorized, std::move(text), ref, sid, seq);
}

bool BrokerCore::Permitted(const std::string& route, const Message& msg) {
  const auto outside = [&](const std::string& id) {
    return "'" + Printable(id) + "' is not in the namespace of principal '" +
           std::string(principal_) + "' (its ids begin with '" +
           std::string(principal_) + "/')";
  };
  switch (TypeOf(msg)) {
    case MessageType::kHello: {
      const Hello& h = std::get<Hello>(msg);
      if (!IdOwnedBy(h.id, principal_)) {
        NotAuthorized(route, "HELLO: " + outside(h.id), MessageType::kHello,
                      h.id);
        return false;
      }
      for (const ServiceSpec& spec : h.services) {
        if (!MayServe(spec.name)) {
          NotAuthorized(route,
                        "HELLO: principal '" + std::string(principal_) +
                            "' may not serve '" + Printable(spec.name) + "'",
                        MessageType::kHello, h.id);
          return false;
        }
      }
      return true;
    }
    case MessageType::kRequest: {
      const Request& r = std::get<Request>(msg);
      if (IdOwnedBy(r.session, principal_)) return true;
      NotAuthorized(route, "REQUEST: " + outside(r.session),
                    MessageType::kRequest, r.session, r.seq);
      return false;
    }
    case MessageType::kAck: {
      const Ack& a = std::get<Ack>(msg);
      if (IdOwnedBy(a.session, principal_)) return true;
      NotAuthorized(route, "ACK: " + outside(a.session), MessageType::kAck,
                    a.session);
      return false;
    }
    case MessageType::kStateExchange: {
      const StateExchange& se = std::get<StateExchange>(msg);
      for (const ClientVector& cv : se.clients) {
        if (!IdOwnedBy(cv.session, principal_)) {
          NotAuthorized(route, "STATE_EXCHANGE: " + outside(cv.session),
                        MessageType::kStateExchange, cv.session);
          return false;
        }
      }
      for (const ServerVector& sv : se.servers) {
        if (!IdOwnedBy(sv.server, principal_)) {
          NotAuthorized(route, "STATE_EXCHANGE: " + outside(sv.server),
                        MessageType::kStateExchange);
          return false;
        }
      }
      return true;
    }
    case MessageType::kProbeReply: {
      const ProbeReply& p = std::get<ProbeReply>(msg);
      for (const ClientVector& cv : p.clients) {
        if (!IdOwnedBy(cv.session, principal_)) {
          NotAuthorized(route, "PROBE_REPLY: " + outside(cv.session),
                        MessageType::kProbeReply, cv.session);
          return false;
        }
      }
      for (const ServerVector& sv : p.servers) {
        if (!IdOwnedBy(sv.server, principal_)) {
          NotAuthorized(route, "PROBE_REPLY: " + outside(sv.server),
                        MessageType::kProbeReply);
          return false;
        }
      }
      return true;
    }
    case MessageType::kGoodbye: {
      const Goodbye& g = std::get<Goodbye>(msg);
      if (g.id.empty() || IdOwnedBy(g.id, principal_)) return true;
      NotAuthorized(route, "GOODBYE: " + outside(g.id), MessageType::kGoodbye,
                    g.id);
      return false;
    }
    case MessageType::kResponse:  // checked against its dispatch
    case MessageType::kHeartbeat:
    case MessageType::kError:
    case MessageType::kWelcome:
    case MessageType::kRecover:
    case MessageType::kProbe:
      return true;
  }
  return true;
}

}  // namespace rejoin::broker_internal
