// Internal to the journal: the on-disk format constants, record framing and
// body codecs, segment names, and the error helpers shared by the journal's
// source files. The format is specified in libproto/JOURNAL.md §2-§3; these
// declarations must stay in step with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rejoin/proto/journal.h"
#include "rejoin/proto/status.h"

namespace rejoin::journal_internal {

// ---------------------------------------------------------------------------
// Format constants (JOURNAL.md "Segment files" and "Records").

constexpr char kMagic[8] = {'R', 'J', 'J', 'O', 'U', 'R', 'N', 'L'};
// 2: op records may carry a digest (flags bit 1). Version 1 segments are
// read as before.
constexpr std::uint32_t kFormatVersion = 2;
constexpr std::size_t kSegmentHeaderBytes = 16;
// masked crc32c (4) | body length (4) | type (1)
constexpr std::size_t kRecordHeaderBytes = 9;
// No record body is larger. Replay treats a longer length field as damage,
// so a flipped bit in a length never becomes a huge allocation or read.
constexpr std::size_t kMaxBodyBytes = std::size_t{256} << 20;
// No segment file is larger: the writer refuses a commit or a snapshot that
// would pass it, and replay refuses a larger file before reading any of it.
constexpr std::size_t kMaxSegmentFileBytes = std::size_t{16} << 30;
// The largest segment_bytes option: a segment passes it by one commit at
// most, which keeps every segment under kMaxSegmentFileBytes.
constexpr std::size_t kMaxSegmentOptionBytes = kMaxSegmentFileBytes / 2;
// Room for every field of an op or release record except the payload and
// the seq list; used to keep bodies under kMaxBodyBytes.
constexpr std::size_t kFixedFieldBytes = 512;
constexpr std::size_t kMaxVarintBytes = 10;

// Approximate encoded size of one op and one session record beyond their
// strings; the sum over the live state is what NeedsCompaction() weighs.
constexpr std::size_t kOpOverheadBytes = 28;
constexpr std::size_t kSessionOverheadBytes = 20;

// Snapshot segments are written in chunks of about this size rather than
// built whole in memory.
constexpr std::size_t kSnapshotChunkBytes = std::size_t{1} << 20;
// A commit buffer grown beyond this by a large payload is given back.
constexpr std::size_t kKeepBufferBytes = std::size_t{4} << 20;

constexpr std::string_view kLockName = "LOCK";
constexpr std::string_view kSegmentPrefix = "seg-";
constexpr std::string_view kSegmentSuffix = ".rjl";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr std::size_t kSegmentDigits = 12;

// Record type byte (wire: values never change). 0 is never used, so a
// zero-filled tail cannot look like a record.
enum class RecordType : std::uint8_t {
  kOpen = 1,
  kOp = 2,
  kRelease = 3,
  kSnapshotBegin = 4,
  kSession = 5,
};

constexpr std::uint8_t kOpFlagPayload = 0x01;
constexpr std::uint8_t kOpFlagDigest = 0x02;

// The type byte of a framed record; it may hold any value, known or not.
inline RecordType TypeOf(const char* record) {
  return static_cast<RecordType>(static_cast<unsigned char>(record[8]));
}
void EncodeFixed32(char* out, std::uint32_t v);
std::uint32_t DecodeFixed32(const char* in);

// Record encoders: each appends one framed, checksummed record to *out.
void EncodeOpen(std::string* out, JournalRole role, std::string_view owner,
                Incarnation incarnation, JournalId journal_id);
void EncodeOp(std::string* out, std::string_view session, Seq seq,
              const JournalOp& op);
void EncodeRelease(std::string* out, std::string_view session, Seq below,
                   const std::vector<Seq>& seqs);
void EncodeSnapshotBegin(std::string* out);
void EncodeSession(std::string* out, std::string_view session,
                   const JournalSession& s);

// Body decoders. Each returns false for a body that does not parse exactly
// (short, overlong, out-of-range field, trailing bytes).
struct OpenRecord {
  JournalRole role = JournalRole::kClient;
  std::string_view owner;
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
};
bool DecodeOpen(std::string_view body, OpenRecord* r);
// Decodes into `op` (reusing its string capacity) and the session name.
bool DecodeOp(std::string_view body, std::string* session, Seq* seq,
              JournalOp* op);
bool DecodeRelease(std::string_view body, std::string* session, Seq* below,
                   std::vector<Seq>* seqs);
bool DecodeSession(std::string_view body, std::string* session, Seq* next_seq,
                   Seq* released_below);

// "seg-" + 12 digits + ".rjl", and its inverse (exact match only).
std::string SegmentName(std::uint64_t number);
bool ParseSegmentName(std::string_view name, std::uint64_t* number);
// The 16-byte header every segment starts with.
std::string SegmentHeader();
std::string_view RoleName(JournalRole role);

// Errors, with the file named.
std::string ErrnoText(int err);
Status IoError(std::string_view what, const std::string& path, int err);
Status Corrupt(std::string message);
Status InvalidArgument(std::string message);

}  // namespace rejoin::journal_internal
