// The journal: record encoding, the state transitions shared by the append
// path and replay, the segment files with their lock, the torn-tail versus
// corruption rule, and the read-only inspection and salvage built on replay.
// The on-disk format and its crash-safety argument are in libproto/JOURNAL.md;
// this file must stay in step with it.
#include "rejoin/proto/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

#include "crc32c.h"

namespace rejoin {
namespace {

// ---------------------------------------------------------------------------
// Format constants (JOURNAL.md "Segment files" and "Records").

constexpr char kMagic[8] = {'R', 'J', 'J', 'O', 'U', 'R', 'N', 'L'};
constexpr std::uint32_t kFormatVersion = 1;
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

// The type byte of a framed record; it may hold any value, known or not.
RecordType TypeOf(const char* record) {
  return static_cast<RecordType>(static_cast<unsigned char>(record[8]));
}

// ---------------------------------------------------------------------------
// Little-endian fixed integers and LEB128 varints.

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
  if (op.payload.empty()) {
    out->push_back(0);
  } else {
    out->push_back(static_cast<char>(kOpFlagPayload));
    PutBytes(out, op.payload);
  }
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

struct OpenRecord {
  JournalRole role = JournalRole::kClient;
  std::string_view owner;
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
};

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
  if ((flags & ~kOpFlagPayload) != 0) return false;
  if ((flags & kOpFlagPayload) != 0 && !in.Bytes(&payload)) return false;
  if (!in.AtEnd()) return false;
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

// ---------------------------------------------------------------------------
// State transitions. Append*() and replay both go through StateApplier, so a
// replayed journal rebuilds exactly the state its writer held. Each Apply
// function validates first, then (when `record_out` is given) encodes the
// record, then changes the state: an invalid call leaves no trace.

Status InvalidArgument(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

std::size_t OpLiveBytes(const std::string& session, const JournalOp& op) {
  return kOpOverheadBytes + session.size() + op.service.size() +
         op.payload.size();
}

class StateApplier {
 public:
  StateApplier(JournalRole role, JournalState* state, std::size_t* live_bytes)
      : role_(role), state_(state), live_bytes_(live_bytes) {}

  bool IsResponseState(std::uint8_t state) const {
    switch (role_) {
      case JournalRole::kClient:
        return state == static_cast<std::uint8_t>(ClientOpState::kCompleted);
      case JournalRole::kServer:
        return state == static_cast<std::uint8_t>(ServerOpState::kExecuted);
    }
    return false;
  }

  Status ApplyOp(const std::string& session, Seq seq, JournalOp&& op,
                 std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    if (seq == 0 || seq == std::numeric_limits<Seq>::max()) {
      return InvalidArgument("seq out of range");
    }
    if (op.state < 1 || op.state > 3) {
      return InvalidArgument("op state " + std::to_string(op.state) +
                             " is not a recordable state");
    }
    if (!op.service.empty() && !IsValidServiceName(op.service)) {
      return InvalidArgument("invalid service name");
    }
    if (op.payload.size() > kMaxBodyBytes - kFixedFieldBytes) {
      return InvalidArgument("payload of " + std::to_string(op.payload.size()) +
                             " bytes exceeds the journal record limit");
    }
    auto it = state_->sessions.find(session);
    if (it != state_->sessions.end() && seq < it->second.released_below) {
      return InvalidArgument("seq " + std::to_string(seq) +
                             " is below the released watermark " +
                             std::to_string(it->second.released_below));
    }
    if (record_out != nullptr) EncodeOp(record_out, session, seq, op);

    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    s.next_seq = std::max(s.next_seq, seq + 1);
    auto [op_it, inserted] = s.ops.try_emplace(seq);
    JournalOp& stored = op_it->second;
    if (!inserted) *live_bytes_ -= OpLiveBytes(session, stored);
    stored.state = op.state;
    stored.service = std::move(op.service);
    stored.status = op.status;
    stored.incarnation = op.incarnation;
    // An empty payload means "no new payload": a state change such as
    // PREPARED -> SENT must not cost a copy of the request. A record that
    // carries the response (COMPLETED, EXECUTED) always replaces it, so an
    // empty response never reads back as the request.
    if (!op.payload.empty() || IsResponseState(op.state)) {
      stored.payload = std::move(op.payload);
    }
    *live_bytes_ += OpLiveBytes(session, stored);
    return Status::Ok();
  }

  Status ApplyRelease(const std::string& session, Seq below,
                      const std::vector<Seq>& seqs, std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    for (Seq s : seqs) {
      if (s == 0) return InvalidArgument("seq 0 in release list");
    }
    if (seqs.size() > (kMaxBodyBytes - kFixedFieldBytes) / kMaxVarintBytes) {
      return InvalidArgument("release list exceeds the journal record limit");
    }
    if (record_out != nullptr) EncodeRelease(record_out, session, below, seqs);

    auto it = state_->sessions.find(session);
    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    RaiseWatermark(session, &s, below);
    for (Seq seq : seqs) {
      auto op_it = s.ops.find(seq);
      if (op_it == s.ops.end()) continue;
      switch (role_) {
        case JournalRole::kServer: {
          // The tombstone keeps the seq known so a late duplicate request
          // is answered, not executed again.
          JournalOp& op = op_it->second;
          *live_bytes_ -= op.payload.size();
          op.state = static_cast<std::uint8_t>(ServerOpState::kReleased);
          std::string().swap(op.payload);
          break;
        }
        case JournalRole::kClient:
          *live_bytes_ -= OpLiveBytes(session, op_it->second);
          s.ops.erase(op_it);
          break;
      }
    }
    return Status::Ok();
  }

  // Only snapshots write session records; applying one raises the session's
  // counters, which after the snapshot's reset means setting them.
  Status ApplySession(const std::string& session, Seq next_seq,
                      Seq released_below, std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    if (released_below == 0 || next_seq < released_below) {
      return InvalidArgument("inconsistent session counters");
    }
    auto it = state_->sessions.find(session);
    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    if (record_out != nullptr) {
      JournalSession counters;
      counters.next_seq = next_seq;
      counters.released_below = released_below;
      EncodeSession(record_out, session, counters);
    }
    RaiseWatermark(session, &s, released_below);
    s.next_seq = std::max(s.next_seq, next_seq);
    return Status::Ok();
  }

  void Reset() {
    state_->sessions.clear();
    *live_bytes_ = 0;
  }

 private:
  JournalSession& NewSession(const std::string& session) {
    *live_bytes_ += kSessionOverheadBytes + session.size();
    return state_->sessions[session];
  }

  // Drops every op below `below`; next_seq follows so that a seq below the
  // watermark can never be issued again.
  void RaiseWatermark(const std::string& session, JournalSession* s,
                      Seq below) {
    if (below <= s->released_below) return;
    auto end = s->ops.lower_bound(below);
    for (auto it = s->ops.begin(); it != end; ++it) {
      *live_bytes_ -= OpLiveBytes(session, it->second);
    }
    s->ops.erase(s->ops.begin(), end);
    s->released_below = below;
    s->next_seq = std::max(s->next_seq, below);
  }

  JournalRole role_;
  JournalState* state_;
  std::size_t* live_bytes_;
};

// ---------------------------------------------------------------------------
// Files and errors.

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
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

UniqueFd OpenFile(const std::string& path, int flags, mode_t mode = 0644) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return UniqueFd(fd);
}

// Writes all of data, resuming after partial writes and EINTR. Returns 0 or
// an errno value.
int WriteAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
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

Status ValidateOptions(const JournalOptions& o) {
  if (o.durability != Durability::kMemory &&
      o.durability != Durability::kProcess &&
      o.durability != Durability::kSync) {
    return InvalidArgument("unknown durability level");
  }
  if (o.role != JournalRole::kClient && o.role != JournalRole::kServer) {
    return InvalidArgument("unknown journal role");
  }
  if (!IsValidId(o.owner_id)) {
    return InvalidArgument("invalid journal owner id");
  }
  if (o.durability != Durability::kMemory && o.dir.empty()) {
    return InvalidArgument("journal directory not set");
  }
  if (o.segment_bytes == 0 || o.segment_bytes > kMaxSegmentOptionBytes) {
    return InvalidArgument("segment_bytes must be between 1 and " +
                           std::to_string(kMaxSegmentOptionBytes));
  }
  return Status::Ok();
}

Result<JournalId> NewJournalId(const JournalOptions& o) {
  if (o.new_journal_id) return o.new_journal_id();
  // std::random_device reports an unusable entropy source by throwing;
  // this is the one place that is translated.
  try {
    std::random_device rd;
    JournalId id = 0;
    while (id == 0) {
      id = (static_cast<JournalId>(rd()) << 32) ^ static_cast<JournalId>(rd());
    }
    return id;
  } catch (const std::exception& e) {
    return Status(ErrorCode::kIoError,
                  std::string("no entropy for a journal id: ") + e.what());
  }
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
// reads and EINTR. Returns 0 or an errno value.
int ReadAt(int fd, char* data, std::size_t n, std::size_t offset) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r =
        ::pread(fd, data + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;  // file shrank under us: nobody else may write
    done += static_cast<std::size_t>(r);
  }
  return 0;
}

// One segment read through a window: at most one record plus one chunk is
// in memory at a time, whatever size the file claims (JOURNAL.md "Replay
// memory").
class SegmentReader {
 public:
  SegmentReader(int fd, std::size_t size) : fd_(fd), size_(size) {}

  std::size_t size() const { return size_; }

  // Points *out at bytes [offset, offset + n); n <= size() - offset and
  // n <= kRecordHeaderBytes + kMaxBodyBytes. Returns 0 or an errno value.
  int Get(std::size_t offset, std::size_t n, const char** out) {
    if (offset < base_ || offset + n > base_ + len_) {
      std::size_t want = std::max(n, std::min(kReadChunkBytes, size_ - offset));
      std::size_t keep = 0;
      if (offset >= base_ && offset < base_ + len_) {
        keep = base_ + len_ - offset;
        std::memmove(buf_.data(), buf_.data() + (offset - base_), keep);
      }
      if (buf_.size() < want) buf_.resize(want);
      base_ = offset;
      len_ = keep;
      if (int err = ReadAt(fd_, buf_.data() + keep, want - keep, offset + keep);
          err != 0) {
        return err;
      }
      len_ = want;
    }
    *out = buf_.data() + (offset - base_);
    return 0;
  }

  // Whether every byte from `offset` to the end is zero. Holes of a sparse
  // file are skipped without reading them.
  int AllZeroFrom(std::size_t offset, bool* zero) {
    *zero = false;
    std::size_t pos = offset;
    while (pos < size_) {
      off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // only a hole is left
      if (data >= 0) {
        pos = std::max(pos, static_cast<std::size_t>(data));
        if (pos >= size_) break;
      }
      off_t hole = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
      std::size_t end = hole > static_cast<off_t>(pos)
                            ? std::min(size_, static_cast<std::size_t>(hole))
                            : size_;
      while (pos < end) {
        std::size_t n = std::min(kReadChunkBytes, end - pos);
        const char* p = nullptr;
        if (int err = Get(pos, n, &p); err != 0) return err;
        if (std::any_of(p, p + n, [](char c) { return c != 0; })) return 0;
        pos += n;
      }
    }
    *zero = true;
    return 0;
  }

 private:
  static constexpr std::size_t kReadChunkBytes = std::size_t{1} << 20;
  int fd_;
  std::size_t size_;
  std::vector<char> buf_;
  std::size_t base_ = 0;
  std::size_t len_ = 0;
};

// Whether the record framed at `offset` is intact: a known type, a length
// within the limit and the file, and a matching checksum. *crc_bytes counts
// the bytes checksummed.
int IsIntactRecordAt(SegmentReader& r, std::size_t offset, bool* intact,
                     std::size_t* crc_bytes) {
  *intact = false;
  if (r.size() - offset < kRecordHeaderBytes) return 0;
  const char* rec = nullptr;
  if (int err = r.Get(offset, kRecordHeaderBytes, &rec); err != 0) return err;
  auto type = static_cast<std::uint8_t>(rec[8]);
  if (type < static_cast<std::uint8_t>(RecordType::kOpen) ||
      type > static_cast<std::uint8_t>(RecordType::kSession)) {
    return 0;
  }
  std::size_t length = DecodeFixed32(rec + 4);
  if (length > kMaxBodyBytes ||
      length > r.size() - offset - kRecordHeaderBytes) {
    return 0;
  }
  if (int err = r.Get(offset, kRecordHeaderBytes + length, &rec); err != 0) {
    return err;
  }
  *crc_bytes += length + 5;
  *intact =
      crc32c::Unmask(DecodeFixed32(rec)) == crc32c::Value(rec + 4, length + 5);
  return 0;
}

// Looks for an intact record starting anywhere in [from, end of file).
// *found is the offset of the first one, or 0 when there is none; the
// search gives up (sets *gave_up) after checksumming a bounded number of
// bytes, so a hostile file cannot make it quadratic.
int FindIntactRecord(SegmentReader& r, std::size_t from, std::size_t* found,
                     bool* gave_up) {
  *found = 0;
  *gave_up = false;
  const std::size_t budget = 8 * (r.size() - from) + kMaxBodyBytes;
  std::size_t spent = 0;
  for (std::size_t at = from; at + kRecordHeaderBytes <= r.size(); ++at) {
    bool intact = false;
    if (int err = IsIntactRecordAt(r, at, &intact, &spent); err != 0) {
      return err;
    }
    if (intact) {
      *found = at;
      return 0;
    }
    if (spent > budget) {
      *gave_up = true;
      return 0;
    }
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// Journal::Files: the lock, the segment files and the commit buffer of a
// kProcess or kSync journal.

class Journal::Files {
 public:
  // A read-only Files (Journal::Inspect) creates, removes, truncates and
  // locks nothing, and learns role and owner from the first open record.
  Files(const JournalOptions& options, bool read_only)
      : dir_(options.dir),
        sync_(options.durability == Durability::kSync),
        read_only_(read_only),
        segment_limit_(options.segment_bytes) {}

  // Creates or locks the directory, replays it into `j`, and leaves the last
  // segment open for appending.
  Status OpenAndReplay(Journal& j);

  // Writes the buffer to the current segment (rolling first if it is full).
  Status Flush();
  // Writes `records` as Flush writes the buffer; `records` is left empty.
  Status Write(std::string& records);

  Status WriteSnapshot(const Journal& j);

  // Journal::Salvage after a read-only replay of `j` that found located
  // damage: keeps the damaged segments aside, writes the snapshot of `j`
  // (already given its new id and raised counters) and removes the
  // segments it supersedes.
  Status Salvage(const Journal& j, SalvageReport* out);
  // Takes the directory's lock without creating the directory.
  Status LockExisting() { return Lock(); }
  bool StartsWithSnapshotPublic(const std::string& name) {
    std::uint64_t number = 0;
    bool yes = false;
    return ParseSegmentName(name, &number) &&
           StartsWithSnapshot(number, &yes).ok() && yes;
  }
  std::string Path(std::string_view name) const {
    std::string p = dir_;
    p += '/';
    p += name;
    return p;
  }

  std::size_t disk_bytes() const {
    return older_bytes_ + segment_size_ + buffer_.size();
  }
  std::string* buffer() { return &buffer_; }
  bool poisoned() const { return poisoned_.load(std::memory_order_relaxed); }
  Status PoisonedError() const {
    return Status(
        ErrorCode::kIoError,
        "journal in " + dir_ + " is unusable after an earlier write error");
  }

 private:
  // Parse results of replay that outlive one segment.
  struct ReplayContext {
    bool seen_open = false;
    Incarnation incarnation = 0;
    JournalId journal_id = 0;
    std::size_t records = 0;
    std::string session;  // scratch, reused across records
    JournalOp op;         // scratch
    std::vector<Seq> seqs;
    // Where replay found damage it refused, when that has a place.
    std::string damaged_segment;
    std::size_t damaged_offset = 0;
  };

 public:
  // What a read-only replay saw, for Journal::Inspect and Salvage.
  struct Seen {
    std::vector<std::uint64_t> segments;    // to replay, in order
    std::vector<std::uint64_t> superseded;  // before the newest snapshot
    std::vector<std::string> other_files;
    std::uint64_t highest_number = 0;
    bool seen_open = false;
    Incarnation incarnation = 0;
    JournalId journal_id = 0;
    std::string damaged_segment;
    std::size_t damaged_offset = 0;
  };
  const Seen& seen() const { return seen_; }

 private:
  Status CreateDir();
  Status Lock();
  Status ListSegments(std::vector<std::uint64_t>* segments);
  Status StartsWithSnapshot(std::uint64_t number, bool* yes);
  Status ReplaySegment(std::uint64_t number, bool last, Journal& j,
                       ReplayContext* ctx);
  // Replay stopped at `offset` of the segment `name` with `problem`: sets
  // *torn to the kind of torn tail it is, or returns kCorrupt naming the
  // file, the offset and what follows (JOURNAL.md "Damage").
  Status ClassifyTail(SegmentReader& reader, const std::string& name, bool last,
                      std::size_t offset, const std::string& problem,
                      bool checksummed, std::string* torn, ReplayContext* ctx);
  Status DamageAt(const std::string& name, std::size_t offset,
                  const std::string& what, ReplayContext* ctx);
  // Cuts a torn tail at `offset` (removes the segment when 0) and reports
  // it; a read-only Files only reports it.
  Status CutTail(int fd, const std::string& name, std::size_t offset,
                 std::size_t size, std::string reason, Journal& j);
  // Applies one checksummed record. Returns a fatal error, or ok with
  // *problem set when the record is damaged (handled like a bad checksum).
  Status ReplayRecord(RecordType type, std::string_view body, Journal& j,
                      ReplayContext* ctx, std::string* problem);
  // Creates segment `number` under a temporary name, lets `fill` write its
  // records after the header, optionally syncs, and renames it into place.
  // *renamed tells the caller whether the segment now exists.
  template <typename Fill>
  Status CreateSegment(std::uint64_t number, bool sync, Fill fill, UniqueFd* fd,
                       std::size_t* bytes, bool* renamed);
  Status Roll();
  static std::function<int(int, std::size_t*)> SnapshotFill(const Journal& j);
  Status SyncDir(const std::string& path);

  std::string dir_;
  bool sync_;
  bool read_only_;
  std::size_t segment_limit_;
  Seen seen_;
  UniqueFd lock_fd_;
  UniqueFd segment_fd_;
  std::uint64_t segment_number_ = 0;
  std::size_t segment_size_ = 0;
  std::vector<std::uint64_t> older_segments_;
  std::size_t older_bytes_ = 0;
  std::uint64_t highest_number_ = 0;  // ever seen, so numbers never repeat
  std::string buffer_;
  // Atomic: Journal::WriteDetached may set it while appends look at it.
  std::atomic<bool> poisoned_{false};
};

Status Journal::Files::CreateDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool existed = fs::is_directory(dir_, ec);
  if (!existed) {
    fs::create_directories(dir_, ec);
    if (ec) {
      return Status(ErrorCode::kIoError, "cannot create journal directory " +
                                             dir_ + ": " + ec.message());
    }
  }
  if (!existed && sync_) {
    // The new directory's entry must survive power loss like its contents.
    fs::path parent = fs::path(dir_).lexically_normal().parent_path();
    return SyncDir(parent.empty() ? std::string(".") : parent.string());
  }
  return Status::Ok();
}

Status Journal::Files::Lock() {
  std::string path = Path(kLockName);
  lock_fd_ = OpenFile(path, O_RDWR | O_CREAT);
  if (!lock_fd_.valid()) return IoError("cannot open lock file", path, errno);
  int rc;
  do {
    rc = ::flock(lock_fd_.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) {
      return Status(ErrorCode::kJournalLocked,
                    "journal in " + dir_ +
                        " is already open (its LOCK is held by another "
                        "process or Journal)");
    }
    return IoError("cannot lock", path, errno);
  }
  return Status::Ok();
}

Status Journal::Files::ListSegments(std::vector<std::uint64_t>* segments) {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr)
    return IoError("cannot list journal directory", dir_, errno);
  std::vector<std::string> temps;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    std::uint64_t number = 0;
    if (ParseSegmentName(name, &number)) {
      segments->push_back(number);
    } else if (name.starts_with(kSegmentPrefix) &&
               name.ends_with(kTempSuffix)) {
      temps.emplace_back(name);
    } else if (read_only_ && name.starts_with(kSegmentPrefix)) {
      seen_.other_files.emplace_back(name);  // e.g. kept aside by Salvage
    }
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return IoError("cannot list journal directory", dir_, err);
  // A temporary segment is an unfinished roll or compaction: its content
  // also lives in the segments that are still in place.
  for (const std::string& t : temps) {
    if (read_only_) {
      seen_.other_files.push_back(t);
      continue;
    }
    std::string path = Path(t);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove", path, errno);
    }
  }
  std::sort(segments->begin(), segments->end());
  std::sort(seen_.other_files.begin(), seen_.other_files.end());
  if (!segments->empty()) highest_number_ = segments->back();
  return Status::Ok();
}

Status Journal::Files::StartsWithSnapshot(std::uint64_t number, bool* yes) {
  *yes = false;
  std::string path = Path(SegmentName(number));
  UniqueFd fd = OpenFile(path, O_RDONLY);
  if (!fd.valid()) return IoError("cannot open", path, errno);
  char buf[kSegmentHeaderBytes + kRecordHeaderBytes];
  std::size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t r = ::pread(fd.get(), buf + got, sizeof(buf) - got,
                        static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return IoError("cannot read", path, errno);
    if (r == 0) return Status::Ok();  // too short to hold a snapshot
    got += static_cast<std::size_t>(r);
  }
  const char* rec = buf + kSegmentHeaderBytes;
  // A snapshot marker has an empty body, so its header is the whole record
  // and its checksum can be verified from these bytes alone.
  *yes = std::memcmp(buf, kMagic, sizeof(kMagic)) == 0 &&
         DecodeFixed32(buf + 8) == kFormatVersion &&
         DecodeFixed32(rec + 4) == 0 &&
         TypeOf(rec) == RecordType::kSnapshotBegin &&
         crc32c::Unmask(DecodeFixed32(rec)) == crc32c::Value(rec + 4, 5);
  return Status::Ok();
}

Status Journal::Files::ReplayRecord(RecordType type, std::string_view body,
                                    Journal& j, ReplayContext* ctx,
                                    std::string* problem) {
  StateApplier applier(j.options_.role, &j.state_, &j.live_bytes_);
  switch (type) {
    case RecordType::kOpen: {
      OpenRecord r;
      if (!DecodeOpen(body, &r)) {
        *problem = "malformed open record";
        return Status::Ok();
      }
      if (read_only_ && !ctx->seen_open) {
        // Inspection learns whose journal it is from its first open record.
        j.options_.role = r.role;
        j.options_.owner_id.assign(r.owner);
      }
      if (r.role != j.options_.role || r.owner != j.options_.owner_id) {
        std::string msg = "journal in " + dir_ + " belongs to " +
                          std::string(RoleName(r.role)) + " '" +
                          std::string(r.owner) + "', not ";
        if (r.role != j.options_.role) {
          msg += std::string(RoleName(j.options_.role)) + " ";
        }
        msg += "'" + j.options_.owner_id + "'";
        return Corrupt(std::move(msg));
      }
      if (ctx->seen_open && r.journal_id != ctx->journal_id) {
        return Corrupt("journal in " + dir_ +
                       " mixes segments of two journals (journal id changed)");
      }
      ctx->seen_open = true;
      ctx->journal_id = r.journal_id;
      ctx->incarnation = std::max(ctx->incarnation, r.incarnation);
      return Status::Ok();
    }
    case RecordType::kOp: {
      Seq seq = 0;
      if (!DecodeOp(body, &ctx->session, &seq, &ctx->op)) {
        *problem = "malformed op record";
        return Status::Ok();
      }
      JournalOp op = std::move(ctx->op);
      ctx->op = JournalOp();
      Status s = applier.ApplyOp(ctx->session, seq, std::move(op), nullptr);
      if (!s.ok()) *problem = "op record rejected: " + s.message();
      return Status::Ok();
    }
    case RecordType::kRelease: {
      Seq below = 0;
      if (!DecodeRelease(body, &ctx->session, &below, &ctx->seqs)) {
        *problem = "malformed release record";
        return Status::Ok();
      }
      Status s = applier.ApplyRelease(ctx->session, below, ctx->seqs, nullptr);
      if (!s.ok()) *problem = "release record rejected: " + s.message();
      return Status::Ok();
    }
    case RecordType::kSnapshotBegin:
      if (!body.empty()) {
        *problem = "malformed snapshot record";
        return Status::Ok();
      }
      applier.Reset();
      return Status::Ok();
    case RecordType::kSession: {
      Seq next_seq = 0, released_below = 0;
      if (!DecodeSession(body, &ctx->session, &next_seq, &released_below)) {
        *problem = "malformed session record";
        return Status::Ok();
      }
      Status s =
          applier.ApplySession(ctx->session, next_seq, released_below, nullptr);
      if (!s.ok()) *problem = "session record rejected: " + s.message();
      return Status::Ok();
    }
  }
  // A checksummed record of a type this build does not know was written by
  // software we do not understand; cutting it off would silently drop data.
  *problem = "record of unknown type " +
             std::to_string(static_cast<unsigned>(type)) +
             " (adding a type needs a new format version)";
  return Status::Ok();
}

Status Journal::Files::CutTail(int fd, const std::string& name,
                               std::size_t offset, std::size_t size,
                               std::string reason, Journal& j) {
  ReplayReport& r = j.report_;
  r.truncated_bytes += size - offset;
  r.truncated_segment = name;
  r.truncated_offset = offset;
  r.truncated_reason = std::move(reason);
  if (read_only_) return Status::Ok();
  std::string path = Path(name);
  if (offset == 0) {
    // Nothing of the segment is usable, not even its header.
    if (::unlink(path.c_str()) != 0)
      return IoError("cannot remove", path, errno);
    return Status::Ok();
  }
  if (::ftruncate(fd, static_cast<off_t>(offset)) != 0) {
    return IoError("cannot truncate torn tail of", path, errno);
  }
  if (sync_ && ::fdatasync(fd) != 0) return IoError("cannot sync", path, errno);
  return Status::Ok();
}

Status Journal::Files::DamageAt(const std::string& name, std::size_t offset,
                                const std::string& what, ReplayContext* ctx) {
  ctx->damaged_segment = name;
  ctx->damaged_offset = offset;
  return Corrupt("journal in " + dir_ + ": " + Path(name) + " at offset " +
                 std::to_string(offset) + ": " + what +
                 ". Nothing was changed; `rejoin-ctl journal inspect` shows "
                 "the journal, `rejoin-ctl journal salvage` is the way out "
                 "(JOURNAL.md \"Damage\")");
}

Status Journal::Files::ClassifyTail(SegmentReader& reader,
                                    const std::string& name, bool last,
                                    std::size_t offset,
                                    const std::string& problem,
                                    bool checksummed, std::string* torn,
                                    ReplayContext* ctx) {
  const std::string path = Path(name);
  const std::size_t size = reader.size();
  const std::size_t left = size - offset;
  auto read_error = [&](int err) { return IoError("cannot read", path, err); };
  if (checksummed) {
    // Its checksum matched, so the record was written whole: no crash
    // produces it.
    return DamageAt(name, offset,
                    problem + " in a record whose checksum matches (" +
                        std::to_string(left) + " bytes from there to the end)",
                    ctx);
  }
  if (!last) {
    // Later segments were started after this one was complete.
    return DamageAt(name, offset,
                    problem + ", followed by " + std::to_string(left) +
                        " bytes and by newer segments",
                    ctx);
  }
  bool zero = false;
  if (int err = reader.AllZeroFrom(offset, &zero); err != 0) {
    return read_error(err);
  }
  if (zero) {
    *torn = "zero-filled tail";
    return Status::Ok();
  }
  if (left < kRecordHeaderBytes) {
    *torn = "incomplete record header";
    return Status::Ok();
  }
  const char* rec = nullptr;
  if (int err = reader.Get(offset, kRecordHeaderBytes, &rec); err != 0) {
    return read_error(err);
  }
  const std::size_t length = DecodeFixed32(rec + 4);
  if (length > kMaxBodyBytes) {
    return DamageAt(name, offset,
                    "record length " + std::to_string(length) +
                        " is above the limit, which no writer produces (" +
                        std::to_string(left) + " bytes to the end)",
                    ctx);
  }
  if (kRecordHeaderBytes + length > left &&
      left - kRecordHeaderBytes <= kMaxBodyBytes) {
    // A kill -9 leaves the record's true length and a prefix of it. If the
    // bytes to the end checksum as a whole record under the length they
    // actually span, the record is complete and its length field damaged.
    if (int err = reader.Get(offset, left, &rec); err != 0) {
      return read_error(err);
    }
    {
      char covered[5];
      EncodeFixed32(covered,
                    static_cast<std::uint32_t>(left - kRecordHeaderBytes));
      covered[4] = rec[8];
      std::uint32_t crc =
          crc32c::Extend(crc32c::Value(covered, 5), rec + kRecordHeaderBytes,
                         left - kRecordHeaderBytes);
      if (crc32c::Unmask(DecodeFixed32(rec)) == crc) {
        return DamageAt(name, offset,
                        "the length field of the last record is damaged "
                        "(the record is complete and checksums with its "
                        "true length)",
                        ctx);
      }
    }
  }
  std::size_t intact_at = 0;
  bool gave_up = false;
  if (int err = FindIntactRecord(reader, offset + 1, &intact_at, &gave_up);
      err != 0) {
    return read_error(err);
  }
  if (intact_at != 0) {
    return DamageAt(name, offset,
                    problem + ", followed by an intact record at offset " +
                        std::to_string(intact_at) +
                        ": damage before intact records is never a torn tail",
                    ctx);
  }
  if (gave_up) {
    return DamageAt(name, offset,
                    problem + ", followed by " + std::to_string(left) +
                        " bytes that could not be shown to hold no intact "
                        "record",
                    ctx);
  }
  if (kRecordHeaderBytes + length <= left) {
    // A record of complete length whose checksum fails: a crash in either
    // level cannot be told apart from damage to acknowledged bytes.
    return DamageAt(name, offset,
                    problem + " in a record of complete length (" +
                        std::to_string(kRecordHeaderBytes + length) + " of " +
                        std::to_string(left) +
                        " bytes to the end): not a torn write",
                    ctx);
  }
  *torn = "record of " + std::to_string(kRecordHeaderBytes + length) +
          " bytes runs past the end of the file";
  return Status::Ok();
}

Status Journal::Files::ReplaySegment(std::uint64_t number, bool last,
                                     Journal& j, ReplayContext* ctx) {
  const std::string name = SegmentName(number);
  const std::string path = Path(name);
  UniqueFd fd = OpenFile(path, last && !read_only_ ? O_RDWR : O_RDONLY);
  if (!fd.valid()) return IoError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat", path, errno);
  auto size = static_cast<std::size_t>(st.st_size);
  if (size > kMaxSegmentFileBytes) {
    // No writer makes a segment this large (JOURNAL.md "Replay memory").
    ctx->damaged_segment = name;
    ctx->damaged_offset = 0;
    return Corrupt("journal in " + dir_ + ": " + path + " is " +
                   std::to_string(size) +
                   " bytes, larger than any segment the journal writes (" +
                   std::to_string(kMaxSegmentFileBytes) +
                   "); refusing to read it. Nothing was changed");
  }
  SegmentReader reader(fd.get(), size);
  auto read_error = [&](int err) { return IoError("cannot read", path, err); };

  // A segment is created whole under a temporary name, so a short or zero
  // header only comes from a power loss in process level that kept the
  // rename but not the data: then the file is a prefix of a header, or zero.
  const std::string header = SegmentHeader();
  const char* head = nullptr;
  bool zero = false;
  if (int err = reader.AllZeroFrom(0, &zero); err != 0) return read_error(err);
  if (size < kSegmentHeaderBytes || zero) {
    bool header_prefix = false;
    if (!zero) {
      if (int err = reader.Get(0, size, &head); err != 0) {
        return read_error(err);
      }
      header_prefix = std::memcmp(head, header.data(), size) == 0;
    }
    if (!last || !(zero || header_prefix)) {
      return DamageAt(name, 0,
                      std::to_string(size) +
                          " bytes that are not a segment header" +
                          (last ? "" : ", followed by newer segments"),
                      ctx);
    }
    return CutTail(fd.get(), name, 0, size,
                   size == 0 ? "empty segment"
                   : zero    ? "zero-filled segment"
                             : "incomplete segment header",
                   j);
  }
  if (int err = reader.Get(0, kSegmentHeaderBytes, &head); err != 0) {
    return read_error(err);
  }
  if (std::memcmp(head, kMagic, sizeof(kMagic)) != 0) {
    return Corrupt(path + ": not a rejoin journal segment (bad magic)");
  }
  std::uint32_t version = DecodeFixed32(head + sizeof(kMagic));
  if (version > kFormatVersion) {
    return Status(ErrorCode::kJournalVersion,
                  path + ": written by journal format version " +
                      std::to_string(version) + "; this build reads up to " +
                      std::to_string(kFormatVersion));
  }
  if (version == 0) return Corrupt(path + ": format version 0");

  std::size_t offset = kSegmentHeaderBytes;
  std::string problem;
  bool checksummed = false;
  while (offset < size) {
    std::size_t left = size - offset;
    if (left < kRecordHeaderBytes) {
      problem = "incomplete record header";
      break;
    }
    const char* rec = nullptr;
    if (int err = reader.Get(offset, kRecordHeaderBytes, &rec); err != 0) {
      return read_error(err);
    }
    std::size_t length = DecodeFixed32(rec + 4);
    if (length > kMaxBodyBytes || length > left - kRecordHeaderBytes) {
      problem = "record length runs past the end of the segment";
      break;
    }
    if (int err = reader.Get(offset, kRecordHeaderBytes + length, &rec);
        err != 0) {
      return read_error(err);
    }
    if (crc32c::Unmask(DecodeFixed32(rec)) !=
        crc32c::Value(rec + 4, length + 5)) {
      problem = "checksum mismatch";
      break;
    }
    Status s = ReplayRecord(TypeOf(rec),
                            std::string_view(rec + kRecordHeaderBytes, length),
                            j, ctx, &problem);
    if (!s.ok()) return Status(s.code(), s.message() + " (" + path + ")");
    if (!problem.empty()) {
      checksummed = true;
      break;
    }
    offset += kRecordHeaderBytes + length;
    ++ctx->records;
  }

  if (!problem.empty()) {
    std::string torn;
    if (Status s = ClassifyTail(reader, name, last, offset, problem,
                                checksummed, &torn, ctx);
        !s.ok()) {
      return s;
    }
    if (Status s = CutTail(fd.get(), name, offset, size, std::move(torn), j);
        !s.ok()) {
      return s;
    }
    size = offset;
  }
  ++j.report_.segments;

  if (last) {
    if (!read_only_ && ::lseek(fd.get(), 0, SEEK_END) < 0) {
      return IoError("cannot seek", path, errno);
    }
    segment_fd_ = std::move(fd);
    segment_number_ = number;
    segment_size_ = size;
  } else {
    older_segments_.push_back(number);
    older_bytes_ += size;
  }
  return Status::Ok();
}

Status Journal::Files::OpenAndReplay(Journal& j) {
  if (!read_only_) {
    if (Status s = CreateDir(); !s.ok()) return s;
    if (Status s = Lock(); !s.ok()) return s;
  }

  std::vector<std::uint64_t> segments;
  if (Status s = ListSegments(&segments); !s.ok()) return s;
  seen_.highest_number = highest_number_;

  // Replay starts at the newest snapshot: everything before it is already
  // folded into it (a compaction that crashed before deleting them).
  std::size_t start = 0;
  for (std::size_t i = segments.size(); i-- > 0;) {
    bool snapshot = false;
    if (Status s = StartsWithSnapshot(segments[i], &snapshot); !s.ok()) {
      return s;
    }
    if (snapshot) {
      start = i;
      break;
    }
  }
  for (std::size_t i = 0; i < start; ++i) {
    seen_.superseded.push_back(segments[i]);
    if (read_only_) continue;
    std::string path = Path(SegmentName(segments[i]));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove superseded segment", path, errno);
    }
  }
  segments.erase(segments.begin(),
                 segments.begin() + static_cast<std::ptrdiff_t>(start));

  ReplayContext ctx;
  Status replayed;
  seen_.segments = segments;
  for (std::size_t i = 0; i < segments.size() && replayed.ok(); ++i) {
    replayed = ReplaySegment(segments[i], i + 1 == segments.size(), j, &ctx);
  }
  j.report_.records = ctx.records;
  seen_.seen_open = ctx.seen_open;
  seen_.incarnation = ctx.incarnation;
  seen_.journal_id = ctx.journal_id;
  seen_.damaged_segment = ctx.damaged_segment;
  seen_.damaged_offset = ctx.damaged_offset;
  if (!replayed.ok() || read_only_) return replayed;

  if (ctx.seen_open) {
    if (ctx.incarnation == std::numeric_limits<Incarnation>::max()) {
      return Corrupt("journal in " + dir_ + ": incarnation counter exhausted");
    }
    j.incarnation_ = ctx.incarnation + 1;
    j.journal_id_ = ctx.journal_id;
  } else {
    // The open record is the first one ever committed, so a journal without
    // one has nothing else either (or was not written by rejoin).
    if (!j.state_.sessions.empty()) {
      return Corrupt("journal in " + dir_ + " has records but no open record");
    }
    Result<JournalId> id = NewJournalId(j.options_);
    if (!id.ok()) return id.status();
    j.report_.created = true;
    j.incarnation_ = 1;
    j.journal_id_ = *id;
  }

  if (!segment_fd_.valid()) {
    // No segment survived (new journal, or a torn first segment removed).
    std::size_t bytes = 0;
    bool renamed = false;
    Status s = CreateSegment(
        highest_number_ + 1, sync_, [](int, std::size_t*) { return 0; },
        &segment_fd_, &bytes, &renamed);
    if (!s.ok()) return s;
    segment_number_ = highest_number_;
    segment_size_ = bytes;
  }
  return Status::Ok();
}

template <typename Fill>
Status Journal::Files::CreateSegment(std::uint64_t number, bool sync, Fill fill,
                                     UniqueFd* out, std::size_t* bytes,
                                     bool* renamed) {
  *renamed = false;
  std::string final_path = Path(SegmentName(number));
  std::string temp_path = final_path + std::string(kTempSuffix);
  UniqueFd fd = OpenFile(temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
  if (!fd.valid()) return IoError("cannot create", temp_path, errno);

  auto fail = [&](std::string_view what, int err) {
    ::unlink(temp_path.c_str());
    return IoError(what, temp_path, err);
  };
  std::string header = SegmentHeader();
  if (int err = WriteAll(fd.get(), header.data(), header.size()); err != 0) {
    return fail("cannot write", err);
  }
  std::size_t filled = 0;
  if (int err = fill(fd.get(), &filled); err != 0) {
    return fail("cannot write", err);
  }
  if (sync && ::fdatasync(fd.get()) != 0) return fail("cannot sync", errno);
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    return fail("cannot rename", errno);
  }
  *renamed = true;
  highest_number_ = std::max(highest_number_, number);
  if (sync) {
    if (Status s = SyncDir(dir_); !s.ok()) return s;
  }
  *out = std::move(fd);
  *bytes = header.size() + filled;
  return Status::Ok();
}

Status Journal::Files::SyncDir(const std::string& path) {
  UniqueFd fd = OpenFile(path, O_RDONLY | O_DIRECTORY);
  if (!fd.valid()) return IoError("cannot open directory", path, errno);
  if (::fsync(fd.get()) != 0)
    return IoError("cannot sync directory", path, errno);
  return Status::Ok();
}

Status Journal::Files::Roll() {
  UniqueFd fd;
  std::size_t bytes = 0;
  bool renamed = false;
  std::uint64_t number = highest_number_ + 1;
  Status s = CreateSegment(
      number, sync_, [](int, std::size_t*) { return 0; }, &fd, &bytes,
      &renamed);
  if (!s.ok()) return s;
  older_segments_.push_back(segment_number_);
  older_bytes_ += segment_size_;
  segment_fd_ = std::move(fd);
  segment_number_ = number;
  segment_size_ = bytes;
  return Status::Ok();
}

Status Journal::Files::Flush() {
  Status s = Write(buffer_);
  if (s.ok() && buffer_.capacity() > kKeepBufferBytes) {
    std::string().swap(buffer_);
  }
  return s;
}

Status Journal::Files::Write(std::string& records) {
  if (poisoned()) return PoisonedError();
  if (records.empty()) return Status::Ok();
  Status s;
  if (segment_size_ > kSegmentHeaderBytes &&
      segment_size_ + records.size() > segment_limit_) {
    s = Roll();
  }
  // The segment's path is only spelled out for an error message.
  auto path = [this] { return Path(SegmentName(segment_number_)); };
  if (s.ok() && records.size() > kMaxSegmentOptionBytes) {
    // Not written: a segment holding it could pass kMaxSegmentFileBytes.
    s = Status(ErrorCode::kIoError,
               "a commit of " + std::to_string(records.size()) +
                   " bytes is larger than a journal segment may grow");
  }
  if (s.ok()) {
    if (int err = WriteAll(segment_fd_.get(), records.data(), records.size());
        err != 0) {
      s = IoError("cannot write", path(), err);
    }
  }
  // One fdatasync per commit, however many records it carries: this is the
  // group commit of kSync.
  if (s.ok() && sync_ && ::fdatasync(segment_fd_.get()) != 0) {
    const int err = errno;
    s = IoError("cannot sync", path(), err);
  }
  if (!s.ok()) {
    // A partial write may sit in the file; the next open truncates it, and
    // until then nothing may be appended behind it.
    poisoned_ = true;
    return s;
  }
  segment_size_ += records.size();
  records.clear();
  return Status::Ok();
}

// Writes the snapshot records of `j` (JOURNAL.md §5) for CreateSegment.
std::function<int(int, std::size_t*)> Journal::Files::SnapshotFill(
    const Journal& j) {
  return [&j](int fd, std::size_t* written) -> int {
    const JournalOptions& o = j.options_;
    std::string chunk;
    chunk.reserve(kSnapshotChunkBytes + kFixedFieldBytes);
    auto flush = [&]() -> int {
      // A snapshot larger than any segment may be would not be read back.
      if (*written + chunk.size() >
          kMaxSegmentFileBytes - kSegmentHeaderBytes) {
        return EFBIG;
      }
      int err = WriteAll(fd, chunk.data(), chunk.size());
      *written += chunk.size();
      chunk.clear();
      return err;
    };
    EncodeSnapshotBegin(&chunk);
    EncodeOpen(&chunk, o.role, o.owner_id, j.incarnation_, j.journal_id_);
    for (const auto& [session, s] : j.state_.sessions) {
      EncodeSession(&chunk, session, s);
      for (const auto& [seq, op] : s.ops) {
        EncodeOp(&chunk, session, seq, op);
        if (chunk.size() >= kSnapshotChunkBytes) {
          if (int err = flush(); err != 0) return err;
        }
      }
    }
    return flush();
  };
}

Status Journal::Files::WriteSnapshot(const Journal& j) {
  if (poisoned_) return PoisonedError();
  auto fill = SnapshotFill(j);
  UniqueFd fd;
  std::size_t bytes = 0;
  bool renamed = false;
  std::uint64_t number = highest_number_ + 1;
  // Always synced, whatever the level: once the old segments are deleted the
  // snapshot is the only copy, and a snapshot lost to power failure would
  // cost the whole journal rather than its tail.
  Status s = CreateSegment(number, /*sync=*/true, fill, &fd, &bytes, &renamed);
  if (!s.ok()) {
    // Before the rename the old segments are untouched and still current;
    // after it the snapshot is in place but its directory entry may not be
    // durable, so stop writing rather than guess.
    if (renamed) poisoned_ = true;
    return s;
  }
  older_segments_.push_back(segment_number_);
  for (std::uint64_t old : older_segments_) {
    // A segment that cannot be removed now is superseded by the snapshot
    // and removed by the next open; it costs disk, not correctness.
    ::unlink(Path(SegmentName(old)).c_str());
  }
  older_segments_.clear();
  older_bytes_ = 0;
  segment_fd_ = std::move(fd);
  segment_number_ = number;
  segment_size_ = bytes;
  return Status::Ok();
}

Status Journal::Files::Salvage(const Journal& j, SalvageReport* out) {
  // 1. Keep every segment from the damaged one on under a new name. A hard
  //    link: the bytes stay reachable whatever happens next.
  std::vector<std::uint64_t> replaced = seen_.superseded;
  for (std::uint64_t number : seen_.segments) replaced.push_back(number);
  bool from_damage = false;
  for (std::uint64_t number : seen_.segments) {
    const std::string name = SegmentName(number);
    if (name == seen_.damaged_segment) from_damage = true;
    if (!from_damage) continue;
    std::string aside = name + ".damaged";
    for (int n = 1; ::access(Path(aside).c_str(), F_OK) == 0; ++n) {
      aside = name + ".damaged." + std::to_string(n);
    }
    if (::link(Path(name).c_str(), Path(aside).c_str()) != 0) {
      return IoError("cannot keep aside", Path(name), errno);
    }
    out->kept_aside.push_back(aside);
  }
  if (Status s = SyncDir(dir_); !s.ok()) return s;
  // 2. The snapshot of the intact prefix under the new id, synced, renamed
  //    and the directory synced: from here on it is the newest snapshot
  //    and open starts at it.
  std::string snapshot;
  std::size_t bytes = 0;
  bool renamed = false;
  UniqueFd fd;
  std::uint64_t number = highest_number_ + 1;
  Status s = CreateSegment(number, /*sync=*/true, SnapshotFill(j), &fd, &bytes,
                           &renamed);
  if (!s.ok()) return s;
  out->snapshot = SegmentName(number);
  // 3. The segments it supersedes, damaged ones included (their bytes are
  //    kept aside), go now rather than at the next open.
  for (std::uint64_t old : replaced) {
    std::string path = Path(SegmentName(old));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove superseded segment", path, errno);
    }
    out->removed.push_back(SegmentName(old));
  }
  return SyncDir(dir_);
}

// ---------------------------------------------------------------------------
// Journal.

Journal::Journal(JournalOptions options) : options_(std::move(options)) {}

Journal::~Journal() = default;

Result<std::unique_ptr<Journal>> Journal::Open(JournalOptions options) {
  if (Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<Journal> j(new Journal(std::move(options)));
  if (j->options_.durability == Durability::kMemory) {
    Result<JournalId> id = NewJournalId(j->options_);
    if (!id.ok()) return id.status();
    j->incarnation_ = 1;
    j->journal_id_ = *id;
    j->report_.created = true;
    return Result<std::unique_ptr<Journal>>(std::move(j));
  }
  j->files_ = std::make_unique<Files>(j->options_, /*read_only=*/false);
  if (Status s = j->files_->OpenAndReplay(*j); !s.ok()) return s;
  // The new incarnation is on disk before Open returns, so no message of
  // this incarnation can leave the process ahead of it.
  EncodeOpen(j->files_->buffer(), j->options_.role, j->options_.owner_id,
             j->incarnation_, j->journal_id_);
  ++j->pending_records_;
  if (Status s = j->Commit(); !s.ok()) return s;
  return Result<std::unique_ptr<Journal>>(std::move(j));
}

Status Journal::AppendOp(const SessionId& session, Seq seq, JournalOp op) {
  std::string* record_out = nullptr;
  if (files_ != nullptr) {
    if (files_->poisoned()) return files_->PoisonedError();
    record_out = files_->buffer();
  }
  op.incarnation = incarnation_;
  StateApplier applier(options_.role, &state_, &live_bytes_);
  Status s = applier.ApplyOp(session, seq, std::move(op), record_out);
  if (s.ok() && record_out != nullptr) ++pending_records_;
  return s;
}

Status Journal::AppendRelease(const SessionId& session, Seq below,
                              const std::vector<Seq>& seqs) {
  std::string* record_out = nullptr;
  if (files_ != nullptr) {
    if (files_->poisoned()) return files_->PoisonedError();
    record_out = files_->buffer();
  }
  StateApplier applier(options_.role, &state_, &live_bytes_);
  Status s = applier.ApplyRelease(session, below, seqs, record_out);
  if (s.ok() && record_out != nullptr) ++pending_records_;
  return s;
}

Status Journal::Commit() {
  if (files_ == nullptr) return Status::Ok();
  Status s = files_->Flush();
  if (s.ok()) pending_records_ = 0;
  return s;
}

void Journal::DetachPending(std::string& out) {
  out.clear();
  if (files_ == nullptr) return;
  out.swap(*files_->buffer());
  pending_records_ = 0;
}

Status Journal::WriteDetached(std::string& records) {
  if (files_ == nullptr) return Status::Ok();
  return files_->Write(records);
}

Status Journal::Compact() {
  if (files_ == nullptr) return Status::Ok();
  if (Status s = Commit(); !s.ok()) return s;
  return files_->WriteSnapshot(*this);
}

bool Journal::NeedsCompaction() const {
  if (files_ == nullptr) return false;
  std::size_t disk = files_->disk_bytes();
  return disk > options_.compact_min_bytes && disk / 4 > live_bytes_;
}

std::size_t Journal::disk_bytes() const {
  return files_ == nullptr ? 0 : files_->disk_bytes();
}

// ---------------------------------------------------------------------------
// Inspection and salvage.

namespace {

// A journal object for a read-only replay: role and owner are learned from
// the journal itself.
JournalOptions ReadOnlyOptions(const std::string& dir) {
  JournalOptions o;
  o.dir = dir;
  o.durability = Durability::kProcess;
  return o;
}

Status NeedsDirectory(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status(ErrorCode::kNotFound, "no journal directory " + dir);
  }
  return Status::Ok();
}

// Whether a live process holds the journal's LOCK. Probes with a shared
// flock on a read-only descriptor, released at once; creates nothing.
bool LockHeld(const std::string& dir) {
  UniqueFd fd = OpenFile(dir + "/" + std::string(kLockName), O_RDONLY);
  if (!fd.valid()) return false;
  int rc;
  do {
    rc = ::flock(fd.get(), LOCK_SH | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return rc != 0 && errno == EWOULDBLOCK;
}

}  // namespace

Status Journal::ReadOnlyReplay(const std::string& dir, Journal* j,
                               JournalInspection* out) {
  j->files_ = std::make_unique<Files>(j->options_, /*read_only=*/true);
  Status s = j->files_->OpenAndReplay(*j);
  if (!s.ok() && s.code() != ErrorCode::kCorrupt) return s;
  const Files::Seen& seen = j->files_->seen();
  out->has_open_record = seen.seen_open;
  out->role = j->options_.role;
  out->owner = j->options_.owner_id;
  out->incarnation = seen.incarnation;
  out->journal_id = seen.journal_id;
  out->state = j->state_;
  out->records = j->report_.records;
  out->other_files = seen.other_files;
  auto add_segment = [&](std::uint64_t number, bool superseded) {
    JournalSegmentInfo info;
    info.name = SegmentName(number);
    std::error_code ec;
    info.bytes = std::filesystem::file_size(dir + "/" + info.name, ec);
    info.superseded = superseded;
    out->segments.push_back(std::move(info));
  };
  for (std::uint64_t n : seen.superseded) add_segment(n, true);
  for (std::uint64_t n : seen.segments) add_segment(n, false);
  if (!s.ok()) {
    out->integrity = JournalIntegrity::kCorrupt;
    out->detail = s.message();
    out->damaged_segment = seen.damaged_segment;
    out->damaged_offset = seen.damaged_offset;
  } else if (!j->report_.truncated_segment.empty()) {
    out->integrity = JournalIntegrity::kTornTail;
    out->torn_bytes = j->report_.truncated_bytes;
    out->detail = j->report_.truncated_segment + " at offset " +
                  std::to_string(j->report_.truncated_offset) + ": " +
                  j->report_.truncated_reason;
  }
  return Status::Ok();
}

Result<JournalInspection> Journal::Inspect(const std::string& dir) {
  if (Status s = NeedsDirectory(dir); !s.ok()) return s;
  std::unique_ptr<Journal> j(new Journal(ReadOnlyOptions(dir)));
  JournalInspection out;
  out.locked = LockHeld(dir);
  if (Status s = ReadOnlyReplay(dir, j.get(), &out); !s.ok()) return s;
  // A snapshot is the first replayed segment when it starts with one.
  if (!out.segments.empty()) {
    for (JournalSegmentInfo& info : out.segments) {
      if (info.superseded) continue;
      info.snapshot = j->files_->StartsWithSnapshotPublic(info.name);
      break;
    }
  }
  return out;
}

Result<SalvageReport> Journal::Salvage(
    const std::string& dir, std::function<JournalId()> new_journal_id) {
  if (Status s = NeedsDirectory(dir); !s.ok()) return s;
  // A journal that needs no salvage is refused before anything is touched
  // (not even LOCK created); the check is repeated under the lock.
  Result<JournalInspection> first = Inspect(dir);
  if (!first.ok()) return first.status();
  if (first->integrity != JournalIntegrity::kCorrupt && !first->locked) {
    return InvalidArgument("journal in " + dir +
                           " is not corrupt; it opens as it is, nothing to "
                           "salvage");
  }
  // The lock: nobody may write while the damage is moved aside.
  Files lock_holder(ReadOnlyOptions(dir), /*read_only=*/false);
  if (Status s = lock_holder.LockExisting(); !s.ok()) return s;

  std::unique_ptr<Journal> j(new Journal(ReadOnlyOptions(dir)));
  JournalInspection seen;
  if (Status s = ReadOnlyReplay(dir, j.get(), &seen); !s.ok()) return s;
  if (seen.integrity != JournalIntegrity::kCorrupt) {
    return InvalidArgument("journal in " + dir + " is not corrupt (" +
                           (seen.integrity == JournalIntegrity::kOk
                                ? std::string("intact")
                                : "torn tail: " + seen.detail) +
                           "); it opens as it is, nothing to salvage");
  }
  if (seen.damaged_segment.empty()) {
    return InvalidArgument("journal in " + dir +
                           " cannot be salvaged: its damage has no place "
                           "to cut at (" +
                           seen.detail + ")");
  }
  if (!seen.has_open_record) {
    return InvalidArgument("journal in " + dir +
                           " cannot be salvaged: no intact open record "
                           "before the damage, so its owner is unknown");
  }
  if (seen.incarnation == std::numeric_limits<Incarnation>::max()) {
    return Corrupt("journal in " + dir + ": incarnation counter exhausted");
  }

  SalvageReport report;
  report.role = seen.role;
  report.owner = seen.owner;
  report.old_journal_id = seen.journal_id;
  report.damage = seen.damaged_segment + " at offset " +
                  std::to_string(seen.damaged_offset);
  JournalOptions id_source = ReadOnlyOptions(dir);
  id_source.new_journal_id = std::move(new_journal_id);
  Result<JournalId> id = NewJournalId(id_source);
  for (int tries = 0; id.ok() && *id == seen.journal_id && tries < 8; ++tries) {
    id = NewJournalId(id_source);
  }
  if (!id.ok()) return id.status();
  if (*id == seen.journal_id) {
    return InvalidArgument("the new journal id equals the old one");
  }
  report.new_journal_id = *id;
  report.incarnation = seen.incarnation + 1;

  // The intact prefix, under a new id, with room above every seq that may
  // have been used after the damage.
  j->journal_id_ = *id;
  j->incarnation_ = report.incarnation;
  constexpr Seq kTop = std::numeric_limits<Seq>::max() - 1;
  for (auto& [name, session] : j->state_.sessions) {
    session.next_seq = session.next_seq > kTop - kSalvageSeqGap
                           ? kTop
                           : session.next_seq + kSalvageSeqGap;
    ++report.sessions;
    report.ops += session.ops.size();
  }
  if (Status s = j->files_->Salvage(*j, &report); !s.ok()) return s;
  return report;
}

}  // namespace rejoin
