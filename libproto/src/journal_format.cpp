// The journal's record framing, field encodings and body codecs
// (JOURNAL.md §3), segment names and headers (§1-§2), and its error texts.
#include "journal_format.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <system_error>
#include <utility>

#include "crc32c.h"

namespace rejoin::journal_internal {
namespace {

// ---------------------------------------------------------------------------
// Little-endian fixed integers and LEB128 varints.

void PutFixed64(std::string* out, std::uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) {
    buf[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
  }
  out->append(buf, sizeof(buf));
}

void PutVarint(std::string* out, std::uint64_t v) {
  char buf[kMaxVarintBytes];
  std::size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7fu) | 0x80u);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

void PutBytes(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Bounds-checked reader over one record body. Every getter returns false
// instead of reading past the end, and a failed read leaves the reader
// failed; callers check once at the end.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body)
      : p_(body.data()), end_(body.data() + body.size()) {}

  bool Byte(std::uint8_t* v) {
    if (p_ == end_) return false;
    *v = static_cast<std::uint8_t>(*p_++);
    return true;
  }

  bool Fixed64(std::uint64_t* v) {
    if (end_ - p_ < 8) return false;
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) {
      r |= static_cast<std::uint64_t>(static_cast<unsigned char>(p_[i]))
           << (8 * i);
    }
    p_ += 8;
    *v = r;
    return true;
  }

  bool Varint(std::uint64_t* v) {
    std::uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      auto b = static_cast<unsigned char>(*p_++);
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && b > 1) return false;
      r |= static_cast<std::uint64_t>(b & 0x7fu) << shift;
      if ((b & 0x80u) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  }

  bool Bytes(std::string_view* s) {
    std::uint64_t n = 0;
    if (!Varint(&n)) return false;
    if (n > static_cast<std::uint64_t>(end_ - p_)) return false;
    *s = std::string_view(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool AtEnd() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

// ---------------------------------------------------------------------------
// Record framing and body encoders.

std::size_t BeginRecord(std::string* out, RecordType type) {
  std::size_t start = out->size();
  out->append(kRecordHeaderBytes, '\0');
  (*out)[start + 8] = static_cast<char>(type);
  return start;
}

// Fills in the length and the checksum, which covers length, type and body.
}  // namespace

void EncodeFixed32(char* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
  }
}

std::uint32_t DecodeFixed32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i]))
         << (8 * i);
  }
  return v;
}

void FinishRecord(std::string* out, std::size_t start) {
  char* rec = out->data() + start;
  std::size_t body = out->size() - start - kRecordHeaderBytes;
  EncodeFixed32(rec + 4, static_cast<std::uint32_t>(body));
  std::uint32_t crc = crc32c::Value(rec + 4, body + 5);
  EncodeFixed32(rec, crc32c::Mask(crc));
}

void EncodeOpen(std::string* out, JournalRole role, std::string_view owner,
                Incarnation incarnation, JournalId journal_id) {
  std::size_t start = BeginRecord(out, RecordType::kOpen);
  out->push_back(static_cast<char>(role));
  PutBytes(out, owner);
  PutVarint(out, incarnation);
  PutFixed64(out, journal_id);
  FinishRecord(out, start);
}

void EncodeOp(std::string* out, std::string_view session, Seq seq,
              const JournalOp& op) {
  std::size_t start = BeginRecord(out, RecordType::kOp);
  PutBytes(out, session);
  PutVarint(out, seq);
  out->push_back(static_cast<char>(op.state));
  PutBytes(out, op.service);
  PutVarint(out, static_cast<std::uint16_t>(op.status));
  PutVarint(out, op.incarnation);
  std::uint8_t flags = 0;
  if (!op.payload.empty()) flags |= kOpFlagPayload;
  if (op.digest) flags |= kOpFlagDigest;
  out->push_back(static_cast<char>(flags));
  if (op.digest) PutFixed64(out, *op.digest);
  if (!op.payload.empty()) PutBytes(out, op.payload);
  FinishRecord(out, start);
}

void EncodeRelease(std::string* out, std::string_view session, Seq below,
                   const std::vector<Seq>& seqs) {
  std::size_t start = BeginRecord(out, RecordType::kRelease);
  PutBytes(out, session);
  PutVarint(out, below);
  PutVarint(out, seqs.size());
  for (Seq s : seqs) PutVarint(out, s);
  FinishRecord(out, start);
}

void EncodeSnapshotBegin(std::string* out) {
  FinishRecord(out, BeginRecord(out, RecordType::kSnapshotBegin));
}

void EncodeSession(std::string* out, std::string_view session,
                   const JournalSession& s) {
  std::size_t start = BeginRecord(out, RecordType::kSession);
  PutBytes(out, session);
  PutVarint(out, s.next_seq);
  PutVarint(out, s.released_below);
  FinishRecord(out, start);
}

// ---------------------------------------------------------------------------
// Body decoders. Each returns false for a body that does not parse exactly
// (short, overlong, out-of-range field, trailing bytes).

bool DecodeOpen(std::string_view body, OpenRecord* r) {
  BodyReader in(body);
  std::uint8_t role = 0;
  if (!in.Byte(&role) || !in.Bytes(&r->owner) || !in.Varint(&r->incarnation) ||
      !in.Fixed64(&r->journal_id) || !in.AtEnd()) {
    return false;
  }
  if (role != static_cast<std::uint8_t>(JournalRole::kClient) &&
      role != static_cast<std::uint8_t>(JournalRole::kServer)) {
    return false;
  }
  r->role = static_cast<JournalRole>(role);
  return true;
}

// Decodes into `op` (reusing its string capacity) and the session name.
bool DecodeOp(std::string_view body, std::string* session, Seq* seq,
              JournalOp* op) {
  BodyReader in(body);
  std::string_view session_bytes, service, payload;
  std::uint64_t status = 0;
  std::uint8_t flags = 0;
  if (!in.Bytes(&session_bytes) || !in.Varint(seq) || !in.Byte(&op->state) ||
      !in.Bytes(&service) || !in.Varint(&status) ||
      !in.Varint(&op->incarnation) || !in.Byte(&flags)) {
    return false;
  }
  if (status > std::numeric_limits<std::uint16_t>::max()) return false;
  if ((flags & ~(kOpFlagPayload | kOpFlagDigest)) != 0) return false;
  std::uint64_t digest = 0;
  if ((flags & kOpFlagDigest) != 0 && !in.Fixed64(&digest)) return false;
  if ((flags & kOpFlagPayload) != 0 && !in.Bytes(&payload)) return false;
  if (!in.AtEnd()) return false;
  op->digest.reset();
  if ((flags & kOpFlagDigest) != 0) op->digest = digest;
  session->assign(session_bytes);
  op->service.assign(service);
  op->payload.assign(payload);
  op->status = static_cast<ErrorCode>(status);
  return true;
}

bool DecodeRelease(std::string_view body, std::string* session, Seq* below,
                   std::vector<Seq>* seqs) {
  BodyReader in(body);
  std::string_view session_bytes;
  std::uint64_t count = 0;
  if (!in.Bytes(&session_bytes) || !in.Varint(below) || !in.Varint(&count)) {
    return false;
  }
  // Every seq takes at least one byte: a larger count is damage, and
  // checking it first keeps a bad count from sizing an allocation.
  if (count > in.remaining()) return false;
  seqs->clear();
  seqs->reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    Seq s = 0;
    if (!in.Varint(&s)) return false;
    seqs->push_back(s);
  }
  if (!in.AtEnd()) return false;
  session->assign(session_bytes);
  return true;
}

bool DecodeSession(std::string_view body, std::string* session, Seq* next_seq,
                   Seq* released_below) {
  BodyReader in(body);
  std::string_view session_bytes;
  if (!in.Bytes(&session_bytes) || !in.Varint(next_seq) ||
      !in.Varint(released_below) || !in.AtEnd()) {
    return false;
  }
  session->assign(session_bytes);
  return true;
}

std::string SegmentName(std::uint64_t number) {
  std::string digits = std::to_string(number);
  std::string name(kSegmentPrefix);
  if (digits.size() < kSegmentDigits) {
    name.append(kSegmentDigits - digits.size(), '0');
  }
  name += digits;
  name += kSegmentSuffix;
  return name;
}

// Accepts exactly "seg-" + 12 digits + ".rjl".
bool ParseSegmentName(std::string_view name, std::uint64_t* number) {
  if (name.size() !=
      kSegmentPrefix.size() + kSegmentDigits + kSegmentSuffix.size()) {
    return false;
  }
  if (!name.starts_with(kSegmentPrefix) || !name.ends_with(kSegmentSuffix)) {
    return false;
  }
  std::string_view digits = name.substr(kSegmentPrefix.size(), kSegmentDigits);
  if (!std::all_of(digits.begin(), digits.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), *number);
  return ec == std::errc() && end == digits.data() + digits.size() &&
         *number > 0;
}

std::string SegmentHeader() {
  std::string h(kMagic, sizeof(kMagic));
  char v[4];
  EncodeFixed32(v, kFormatVersion);
  h.append(v, 4);
  h.append(4, '\0');  // reserved
  return h;
}

std::string_view RoleName(JournalRole role) {
  switch (role) {
    case JournalRole::kClient:
      return "client";
    case JournalRole::kServer:
      return "server";
  }
  return "unknown";
}

// Reads [offset, offset + n) of a file with pread, resuming after partial
std::string ErrnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

Status IoError(std::string_view what, const std::string& path, int err) {
  return Status(ErrorCode::kIoError,
                std::string(what) + " " + path + ": " + ErrnoText(err));
}

Status Corrupt(std::string message) {
  return Status(ErrorCode::kCorrupt, std::move(message));
}

// Owns one file descriptor.
Status InvalidArgument(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace rejoin::journal_internal
