// The trace's printing side (sim_trace.h).
#include "sim_trace.h"

#include <string_view>

#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/messages.h"
#include "rejoin/proto/status.h"

namespace rejoin::sim {
namespace {

const char* KindName(TraceKind k) {
  switch (k) {
    case TraceKind::kSend:
      return "send";
    case TraceKind::kDeliver:
      return "deliver";
    case TraceKind::kCall:
      return "call";
    case TraceKind::kAccepted:
      return "accepted";
    case TraceKind::kExecuted:
      return "executed";
    case TraceKind::kAnswered:
      return "answered";
    case TraceKind::kCrash:
      return "crash";
    case TraceKind::kRestart:
      return "restart";
    case TraceKind::kReset:
      return "reset";
    case TraceKind::kPartition:
      return "partition";
    case TraceKind::kDiskFault:
      return "disk-fault";
    case TraceKind::kJournalLost:
      return "journal-lost";
    case TraceKind::kBrokerStart:
      return "broker-start";
    case TraceKind::kDecision:
      return "decision";
    case TraceKind::kNote:
      return "note";
  }
  return "?";
}

const char* CrashName(int how) {
  switch (how) {
    case 1:
      return "after journal append, before sync";
    case 2:
      return "after sync, before send";
    case 3:
      return "in a handler, after its side effect";
    case 4:
      return "journal commit failed";
    case 6:
      return "broker";
    case 7:
      return "broker, in the middle of a turn's sends";
    case 8:
      return "in journal compaction";
    default:
      return "between steps";
  }
}

std::string Describe(const TraceEvent& e) {
  std::string s;
  switch (e.kind) {
    case TraceKind::kSend:
    case TraceKind::kDeliver:
      s = std::string(MessageTypeName(static_cast<MessageType>(e.a)));
      if (e.kind == TraceKind::kSend && e.b == 1) s += " LOST";
      if (e.kind == TraceKind::kSend && (e.b & 2) != 0) s += " (resend)";
      if (e.kind == TraceKind::kDeliver &&
          e.a == static_cast<int>(MessageType::kResponse)) {
        s += " status=" +
             std::string(ErrorCodeName(static_cast<ErrorCode>(e.b)));
      }
      return s;
    case TraceKind::kExecuted:
    case TraceKind::kAnswered:
      return "status=" +
             std::string(ErrorCodeName(static_cast<ErrorCode>(e.a)));
    case TraceKind::kCrash:
      return CrashName(e.a);
    case TraceKind::kDecision:
      return std::string(ActionName(static_cast<Action>(e.a))) + " (" +
             std::string(BreakpointName(static_cast<Breakpoint>(e.b))) + ")";
    case TraceKind::kPartition:
      return e.a ? "cut off" : "back";
    default:
      return e.a ? "a=" + std::to_string(e.a) : std::string();
  }
}

}  // namespace

std::vector<std::string> Trace::Last(
    std::uint32_t client, std::uint64_t seq, std::size_t k,
    const std::vector<std::string>& names) const {
  std::vector<std::string> out;
  const std::uint64_t kept = count_ < size_ ? count_ : size_;
  for (std::uint64_t i = 0; i < kept && out.size() < k; ++i) {
    const TraceEvent& e = ring_[(count_ - 1 - i) % size_];
    // The operation's own events, and the crashes and restarts around them.
    const bool mine =
        client == 0 || (e.client == client && e.seq == seq) ||
        e.kind == TraceKind::kCrash || e.kind == TraceKind::kRestart ||
        e.kind == TraceKind::kBrokerStart || e.kind == TraceKind::kJournalLost;
    if (!mine) continue;
    std::string line = "t=" + std::to_string(e.at_us) + "us ";
    line += e.party < names.size() ? names[e.party] : "?";
    line += " ";
    line += KindName(e.kind);
    if (e.client != 0) {
      line += " s" + std::to_string(e.client - 1) + "/" + std::to_string(e.seq);
    }
    const std::string d = Describe(e);
    if (!d.empty()) line += " " + d;
    out.push_back(std::move(line));
  }
  return std::vector<std::string>(out.rbegin(), out.rend());
}

}  // namespace rejoin::sim
