// The vocabulary shared by every part of rejoin: identities, sequence numbers,
// operation states and service policies. Enumerator values marked "wire" are
// encoded as-is and never change once shipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rejoin {

// A client's durable session id, or a server's durable server id. Printable
// ASCII, 1..kMaxIdBytes bytes (checked by the codec and the journal).
using SessionId = std::string;
using ServerId = std::string;
// Operation sequence number within a session: starts at 1, strictly
// increasing, never reused. 0 means "none".
using Seq = std::uint64_t;
// Per-process-start counter, persisted in the journal; starts at 1.
using Incarnation = std::uint64_t;
// Random id chosen when a journal is created; a new id means lost memory.
using JournalId = std::uint64_t;
// Random id chosen at each broker start.
using Epoch = std::uint64_t;

inline constexpr std::size_t kMaxIdBytes = 128;
inline constexpr std::size_t kMaxServiceBytes = 128;

// True when `id` is 1..kMaxIdBytes printable ASCII bytes (0x21..0x7e).
bool IsValidId(std::string_view id);
// Same rule for service names, with kMaxServiceBytes.
bool IsValidServiceName(std::string_view name);

// Requester-side operation state (wire).
enum class ClientOpState : std::uint8_t {
  kNone = 0,       // no record: never issued, or the journal was lost
  kPrepared = 1,   // journaled with its payload, maybe not yet sent
  kSent = 2,       // handed to the socket at least once
  kCompleted = 3,  // response journaled and handed to the application
};

// Responder-side operation state (wire).
enum class ServerOpState : std::uint8_t {
  kNone = 0,      // no record
  kReceived = 1,  // journaled before the handler started
  kExecuted = 2,  // response journaled before it was sent
  kReleased = 3,  // client confirmed receipt; only the watermark remains
};

// What a service does with an operation whose execution is in doubt because
// the server restarted between RECEIVED and EXECUTED (wire).
enum class InDoubtPolicy : std::uint8_t {
  kReexecute = 1,      // run the handler again (handler is idempotent)
  kResolveHook = 2,    // ask the application's resolve hook
  kAnswerInDoubt = 3,  // answer IN_DOUBT to the client
};

// Journal durability level (local, but also reported in benchmarks).
enum class Durability : std::uint8_t {
  kMemory = 0,   // survives peer and broker failures, not its own crash
  kProcess = 1,  // in the OS before the append returns; survives kill -9
  kSync = 2,     // group-committed fdatasync; survives power loss
};

std::string_view ClientOpStateName(ClientOpState s);
std::string_view ServerOpStateName(ServerOpState s);
std::string_view InDoubtPolicyName(InDoubtPolicy p);
std::string_view DurabilityName(Durability d);

}  // namespace rejoin
