// Validation and names for the shared vocabulary.
#include "rejoin/proto/types.h"

namespace rejoin {
namespace {

bool IsPrintableToken(std::string_view s, std::size_t max_bytes) {
  if (s.empty() || s.size() > max_bytes) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

bool IsValidId(std::string_view id) {
  return IsPrintableToken(id, kMaxIdBytes);
}

bool IsValidServiceName(std::string_view name) {
  return IsPrintableToken(name, kMaxServiceBytes);
}

std::string_view ClientOpStateName(ClientOpState s) {
  switch (s) {
    case ClientOpState::kNone:
      return "none";
    case ClientOpState::kPrepared:
      return "prepared";
    case ClientOpState::kSent:
      return "sent";
    case ClientOpState::kCompleted:
      return "completed";
  }
  return "invalid";
}

std::string_view ServerOpStateName(ServerOpState s) {
  switch (s) {
    case ServerOpState::kNone:
      return "none";
    case ServerOpState::kReceived:
      return "received";
    case ServerOpState::kExecuted:
      return "executed";
    case ServerOpState::kReleased:
      return "released";
  }
  return "invalid";
}

std::string_view InDoubtPolicyName(InDoubtPolicy p) {
  switch (p) {
    case InDoubtPolicy::kReexecute:
      return "reexecute";
    case InDoubtPolicy::kResolveHook:
      return "resolve_hook";
    case InDoubtPolicy::kAnswerInDoubt:
      return "answer_in_doubt";
  }
  return "invalid";
}

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kMemory:
      return "memory";
    case Durability::kProcess:
      return "process";
    case Durability::kSync:
      return "sync";
  }
  return "invalid";
}

}  // namespace rejoin
