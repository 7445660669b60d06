// Fuzz target: journal replay from segment files a disk may hold
// (JOURNAL.md §2-4), through Inspect, Open, Compact and Salvage over the
// in-memory FaultEnv. The input format is fuzz_journal_files.h's. Properties
// beyond "no crash, no throw, errors are Statuses":
// - Inspect and Open agree: a journal Inspect finds intact or torn only at
//   the tail opens, to the state Inspect replayed; one it finds corrupt does
//   not open;
// - a journal that does not open is left exactly as it was on disk;
// - an opened journal's state keeps the invariants of JournalState, and
//   every session id, service and payload in it comes from a record whose
//   checksum verifies (checked by a walk written apart from the journal's);
// - an opened journal opens again to the same state with nothing cut and
//   the next incarnation, also after Compact;
// - a salvaged journal opens.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crc32c.h"
#include "fuzz_check.h"
#include "fuzz_journal_files.h"
#include "rejoin/proto/journal.h"
#include "request_digest.h"
#include "support/fault_env.h"

namespace rejoin::fuzz {
namespace {

constexpr char kDir[] = "/j";
constexpr std::size_t kSegmentHeader = 16;
constexpr std::size_t kRecordHeader = 9;
constexpr std::uint64_t kMaxBody = std::uint64_t{1} << 28;

std::uint32_t Fixed32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    v |= std::uint32_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  }
  return v;
}

// The bodies of the records at the start of `segment` whose checksums
// verify, up to the first that does not.
void VerifiedBodies(const std::string& segment,
                    std::vector<std::string_view>& out) {
  std::size_t at = kSegmentHeader;
  while (at + kRecordHeader <= segment.size()) {
    const std::uint64_t length = Fixed32(segment, at + 4);
    if (length > kMaxBody || at + kRecordHeader + length > segment.size()) {
      return;
    }
    const std::uint32_t crc = crc32c::Value(
        segment.data() + at + 4, static_cast<std::size_t>(length) + 5);
    if (crc32c::Mask(crc) != Fixed32(segment, at)) return;
    out.push_back(std::string_view(segment).substr(
        at + kRecordHeader, static_cast<std::size_t>(length)));
    at += kRecordHeader + static_cast<std::size_t>(length);
  }
}

// Rewrites the checksum of every record at the start of `segment` whose
// length fits, as a writer would have written it.
void FixChecksums(std::string& segment) {
  std::size_t at = kSegmentHeader;
  while (at + kRecordHeader <= segment.size()) {
    const std::uint64_t length = Fixed32(segment, at + 4);
    if (length > kMaxBody || at + kRecordHeader + length > segment.size()) {
      return;
    }
    const std::uint32_t crc = crc32c::Mask(crc32c::Value(
        segment.data() + at + 4, static_cast<std::size_t>(length) + 5));
    for (std::size_t i = 0; i < 4; ++i) {
      segment[at + i] = static_cast<char>((crc >> (8 * i)) & 0xffu);
    }
    at += kRecordHeader + static_cast<std::size_t>(length);
  }
}

bool InSomeBody(std::string_view bytes,
                const std::vector<std::string_view>& bodies) {
  if (bytes.empty()) return true;
  for (std::string_view b : bodies) {
    if (b.find(bytes) != std::string_view::npos) return true;
  }
  return false;
}

std::map<std::string, std::string> Segments(const testing::FaultEnv& env) {
  std::map<std::string, std::string> out;
  for (const std::string& name : env.FileNames(kDir)) {
    if (name == "LOCK") continue;
    out[name] = env.Contents(std::string(kDir) + "/" + name);
  }
  return out;
}

// The older form of a request digest in a record's service field.
std::string DigestText(std::uint64_t digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(server_internal::kDigestPrefix);
  for (int shift = 60; shift >= 0; shift -= 4) {
    out.push_back(kHex[(digest >> static_cast<unsigned>(shift)) & 0xFu]);
  }
  return out;
}

void CheckState(const JournalState& state, JournalRole role,
                const std::vector<std::string_view>& bodies) {
  for (const auto& [id, session] : state.sessions) {
    FUZZ_CHECK(IsValidId(id));
    FUZZ_CHECK(InSomeBody(id, bodies));
    FUZZ_CHECK(session.released_below >= 1);
    FUZZ_CHECK(session.released_below <= session.next_seq);
    for (const auto& [seq, op] : session.ops) {
      FUZZ_CHECK(seq >= session.released_below && seq < session.next_seq);
      FUZZ_CHECK(op.state >= 1 && op.state <= 3);
      FUZZ_CHECK(InSomeBody(op.service, bodies));
      FUZZ_CHECK(InSomeBody(op.payload, bodies));
      if (role == JournalRole::kServer) {
        // What libserver reads back out of an EXECUTED record's service.
        if (auto digest = server_internal::ParseDigestField(op.service)) {
          FUZZ_CHECK(DigestText(*digest) == op.service);
        }
      }
    }
  }
}

JournalOptions Options(testing::FaultEnv* env, JournalRole role,
                       std::string owner) {
  JournalOptions o;
  o.dir = kDir;
  o.durability = Durability::kSync;
  o.role = role;
  o.owner_id = std::move(owner);
  o.new_journal_id = [] { return JournalId{0x5eed}; };
  o.env = env;
  return o;
}

// Opens again what just opened as `first`: same state, nothing cut.
void ExpectReopens(const JournalOptions& o, const JournalState& state,
                   Incarnation incarnation) {
  Result<std::unique_ptr<Journal>> again = Journal::Open(o);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK((*again)->state() == state);
  FUZZ_CHECK((*again)->report().truncated_bytes == 0);
  FUZZ_CHECK((*again)->incarnation() == incarnation + 1);
}

}  // namespace
}  // namespace rejoin::fuzz

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  using namespace rejoin::fuzz;
  JournalInput input = ParseJournalInput(AsText(data, size));
  if ((input.flags & kFlagFixChecksums) != 0) {
    for (std::string& segment : input.segments) FixChecksums(segment);
  }
  testing::FaultEnv env;
  bool created = false;
  FUZZ_CHECK(env.CreateDirs(kDir, &created) == 0);
  for (std::size_t i = 0; i < input.segments.size(); ++i) {
    std::unique_ptr<JournalWritableFile> f;
    const std::string path = std::string(kDir) + "/" + SegmentName(i + 1);
    FUZZ_CHECK(env.NewWritableFile(path, &f) == 0);
    FUZZ_CHECK(f->Append(input.segments[i]) == 0);
    FUZZ_CHECK(f->Sync() == 0);
  }
  FUZZ_CHECK(env.SyncDir(kDir) == 0);
  const std::map<std::string, std::string> before = Segments(env);

  Result<JournalInspection> inspection = Journal::Inspect(kDir, &env);
  JournalRole role = (input.flags & kFlagServer) != 0 ? JournalRole::kServer
                                                      : JournalRole::kClient;
  std::string owner = "fuzz-owner";
  // The journal's own role and owner, when it names ones an opener can have
  // (an owner that is not a valid id only ever mismatches).
  const bool named = inspection.ok() && inspection->has_open_record &&
                     IsValidId(inspection->owner);
  if (named) {
    role = inspection->role;
    owner = inspection->owner;
  }
  const JournalOptions options = Options(&env, role, owner);

  std::vector<std::string_view> bodies;
  for (const auto& [name, bytes] : before) VerifiedBodies(bytes, bodies);

  Result<std::unique_ptr<Journal>> opened = Journal::Open(options);
  if (named) {
    FUZZ_CHECK(opened.ok() ==
               (inspection->integrity != JournalIntegrity::kCorrupt));
  }
  if (!opened.ok()) {
    const ErrorCode code = opened.status().code();
    FUZZ_CHECK(code == ErrorCode::kCorrupt ||
               code == ErrorCode::kJournalVersion);
    FUZZ_CHECK(Segments(env) == before);
    if (named && (input.flags & kFlagSalvage) != 0) {
      Result<SalvageReport> salvaged = Journal::Salvage(
          kDir, [] { return JournalId{0x5a1e}; }, &env);
      if (salvaged.ok()) FUZZ_CHECK(Journal::Open(options).ok());
    }
    return 0;
  }

  std::unique_ptr<Journal> journal = std::move(opened).value();
  const JournalState state = journal->state();
  const Incarnation incarnation = journal->incarnation();
  CheckState(state, role, bodies);
  if (named) {
    FUZZ_CHECK(state == inspection->state);
    FUZZ_CHECK(incarnation == inspection->incarnation + 1);
  } else {
    FUZZ_CHECK(incarnation == 1);
  }
  const bool compact = (input.flags & kFlagCompact) != 0;
  if (compact) FUZZ_CHECK(journal->Compact().ok());
  journal.reset();
  ExpectReopens(options, state, incarnation);
  return 0;
}
