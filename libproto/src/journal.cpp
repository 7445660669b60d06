// The journal: record encoding, the state transitions shared by the append
// path and replay, and the segment files with their lock. The on-disk format
// and its crash-safety argument are in libproto/JOURNAL.md; this file must
// stay in step with it.
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

int ReadAll(int fd, char* data, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, data + done, n - done, static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;  // file shrank under us: nobody else may write
    done += static_cast<std::size_t>(r);
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
  if (o.segment_bytes == 0) {
    return InvalidArgument("segment_bytes must be positive");
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

}  // namespace

// ---------------------------------------------------------------------------
// Journal::Files: the lock, the segment files and the commit buffer of a
// kProcess or kSync journal.

class Journal::Files {
 public:
  explicit Files(const JournalOptions& options)
      : dir_(options.dir),
        sync_(options.durability == Durability::kSync),
        segment_limit_(options.segment_bytes) {}

  // Creates or locks the directory, replays it into `j`, and leaves the last
  // segment open for appending.
  Status OpenAndReplay(Journal& j);

  // Writes the buffer to the current segment (rolling first if it is full).
  Status Flush();
  // Writes `records` as Flush writes the buffer; `records` is left empty.
  Status Write(std::string& records);

  Status WriteSnapshot(const Journal& j);

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
  };

  std::string Path(std::string_view name) const {
    std::string p = dir_;
    p += '/';
    p += name;
    return p;
  }

  Status CreateDir();
  Status Lock();
  Status ListSegments(std::vector<std::uint64_t>* segments);
  Status StartsWithSnapshot(std::uint64_t number, bool* yes);
  Status ReplaySegment(std::uint64_t number, bool last, Journal& j,
                       ReplayContext* ctx);
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
  Status SyncDir(const std::string& path);

  std::string dir_;
  bool sync_;
  std::size_t segment_limit_;
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
    }
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return IoError("cannot list journal directory", dir_, err);
  // A temporary segment is an unfinished roll or compaction: its content
  // also lives in the segments that are still in place.
  for (const std::string& t : temps) {
    std::string path = Path(t);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove", path, errno);
    }
  }
  std::sort(segments->begin(), segments->end());
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
  return Corrupt("journal in " + dir_ + " holds a record of unknown type " +
                 std::to_string(static_cast<unsigned>(type)));
}

Status Journal::Files::ReplaySegment(std::uint64_t number, bool last,
                                     Journal& j, ReplayContext* ctx) {
  std::string path = Path(SegmentName(number));
  UniqueFd fd = OpenFile(path, last ? O_RDWR : O_RDONLY);
  if (!fd.valid()) return IoError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat", path, errno);
  auto size = static_cast<std::size_t>(st.st_size);

  if (size < kSegmentHeaderBytes) {
    if (!last) return Corrupt(path + ": segment shorter than its header");
    // Segments are created whole under a temporary name, so only a lost
    // power-loss race leaves this; nothing after it can have been written.
    if (::unlink(path.c_str()) != 0)
      return IoError("cannot remove", path, errno);
    j.report_.truncated_bytes += size;
    return Status::Ok();
  }

  auto data = std::make_unique_for_overwrite<char[]>(size);
  if (int err = ReadAll(fd.get(), data.get(), size); err != 0) {
    return IoError("cannot read", path, err);
  }
  if (std::memcmp(data.get(), kMagic, sizeof(kMagic)) != 0) {
    return Corrupt(path + ": not a rejoin journal segment (bad magic)");
  }
  std::uint32_t version = DecodeFixed32(data.get() + sizeof(kMagic));
  if (version > kFormatVersion) {
    return Status(ErrorCode::kJournalVersion,
                  path + ": written by journal format version " +
                      std::to_string(version) + "; this build reads up to " +
                      std::to_string(kFormatVersion));
  }
  if (version == 0) return Corrupt(path + ": format version 0");

  std::size_t offset = kSegmentHeaderBytes;
  std::string problem;
  while (offset < size) {
    const char* rec = data.get() + offset;
    std::size_t left = size - offset;
    if (left < kRecordHeaderBytes) {
      problem = "incomplete record header";
      break;
    }
    std::size_t length = DecodeFixed32(rec + 4);
    if (length > kMaxBodyBytes || length > left - kRecordHeaderBytes) {
      problem = "record length runs past the end of the segment";
      break;
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
    if (!problem.empty()) break;
    offset += kRecordHeaderBytes + length;
    ++ctx->records;
  }

  if (!problem.empty()) {
    if (!last) {
      // Later segments were started after this one was complete, so bad
      // bytes here are damage, not an interrupted write.
      return Corrupt(path + " at offset " + std::to_string(offset) + ": " +
                     problem + " (followed by newer segments)");
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
      return IoError("cannot truncate torn tail of", path, errno);
    }
    if (sync_ && ::fdatasync(fd.get()) != 0) {
      return IoError("cannot sync", path, errno);
    }
    j.report_.truncated_bytes += size - offset;
    size = offset;
  }
  ++j.report_.segments;

  if (last) {
    if (::lseek(fd.get(), 0, SEEK_END) < 0) {
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
  if (Status s = CreateDir(); !s.ok()) return s;
  if (Status s = Lock(); !s.ok()) return s;

  std::vector<std::uint64_t> segments;
  if (Status s = ListSegments(&segments); !s.ok()) return s;

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
    std::string path = Path(SegmentName(segments[i]));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove superseded segment", path, errno);
    }
  }
  segments.erase(segments.begin(),
                 segments.begin() + static_cast<std::ptrdiff_t>(start));

  ReplayContext ctx;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    Status s = ReplaySegment(segments[i], i + 1 == segments.size(), j, &ctx);
    if (!s.ok()) return s;
  }
  j.report_.records = ctx.records;

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

Status Journal::Files::WriteSnapshot(const Journal& j) {
  if (poisoned_) return PoisonedError();
  const JournalOptions& o = j.options_;
  auto fill = [&](int fd, std::size_t* written) -> int {
    std::string chunk;
    chunk.reserve(kSnapshotChunkBytes + kFixedFieldBytes);
    auto flush = [&]() -> int {
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
  j->files_ = std::make_unique<Files>(j->options_);
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

}  // namespace rejoin
