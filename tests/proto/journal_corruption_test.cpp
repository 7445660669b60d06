// Damaged journals: torn tails at every offset, bit flips in every field,
// damage before the tail, hostile length and count fields, unknown record
// types, random mutations. Replay must cut a torn tail (a record running
// past the end, or zero fill) off exactly at the last good record, refuse
// any other damage without changing a byte, and never crash. Records are also
// built by hand here from JOURNAL.md, with an independent CRC, so the
// documented format and the code cannot drift apart unnoticed.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../../libproto/src/crc32c.h"
#include "gtest/gtest.h"
#include "rejoin/proto/journal.h"
#include "support/files.h"
#include "support/journal_ops.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

constexpr JournalId kTestJournalId = 0x0badc0ffee0ddf00u;
constexpr char kSegment1[] = "seg-000000000001.rjl";

JournalOptions Options(const std::string& dir) {
  JournalOptions o;
  o.dir = dir;
  o.role = JournalRole::kClient;
  o.owner_id = "client-1";
  o.new_journal_id = [] { return kTestJournalId; };
  return o;
}

std::unique_ptr<Journal> OpenJournal(const JournalOptions& o) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  if (!r.ok()) {
    ADD_FAILURE() << "Open(" << o.dir << "): " << r.status().ToString();
    return nullptr;
  }
  return std::move(r).value();
}

ErrorCode OpenError(const JournalOptions& o) {
  return Journal::Open(o).status().code();
}

std::string Payload(Seq seq) {
  return "request-" + std::to_string(seq) + std::string(seq % 7 * 5, '.');
}

using testing::ReadFile;
using testing::WriteFile;

void ResetDir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
}

// ---------------------------------------------------------------------------
// The format, written from JOURNAL.md alone.

// Bit-at-a-time CRC-32C: slow, obviously right, shares nothing with the
// library's implementation.
std::uint32_t ReferenceCrc32c(const std::string& bytes) {
  std::uint32_t crc = 0xffffffffu;
  for (char ch : bytes) {
    crc ^= static_cast<unsigned char>(ch);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1u) != 0 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
  }
  return ~crc;
}

std::uint32_t ReferenceMask(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string Fixed32(std::uint32_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

std::string Fixed64(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

std::string Varint(std::uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}

std::string Bytes(const std::string& b) { return Varint(b.size()) + b; }

std::string SegmentHeader(std::uint32_t version = 2) {
  return std::string("RJJOURNL") + Fixed32(version) + Fixed32(0);
}

constexpr std::uint8_t kTypeOpen = 1;
constexpr std::uint8_t kTypeOp = 2;
constexpr std::uint8_t kTypeRelease = 3;
constexpr std::uint8_t kTypeSnapshotBegin = 4;
constexpr std::uint8_t kTypeSession = 5;

std::string Record(std::uint8_t type, const std::string& body) {
  std::string covered = Fixed32(static_cast<std::uint32_t>(body.size()));
  covered.push_back(static_cast<char>(type));
  covered += body;
  return Fixed32(ReferenceMask(ReferenceCrc32c(covered))) + covered;
}

std::string OpenBody(std::uint8_t role, const std::string& owner,
                     Incarnation incarnation, JournalId id) {
  return std::string(1, static_cast<char>(role)) + Bytes(owner) +
         Varint(incarnation) + Fixed64(id);
}

std::string OpBody(const std::string& session, Seq seq, std::uint8_t state,
                   const std::string& service, std::uint16_t status,
                   Incarnation incarnation, const std::string* payload) {
  std::string b = Bytes(session) + Varint(seq) +
                  std::string(1, static_cast<char>(state)) + Bytes(service) +
                  Varint(status) + Varint(incarnation);
  if (payload != nullptr) return b + '\x01' + Bytes(*payload);
  return b + '\0';
}

// Splits a segment into its records' (type, body) pairs, checking framing
// and every checksum on the way.
std::vector<std::pair<std::uint8_t, std::string>> ParseSegment(
    const std::string& bytes) {
  std::vector<std::pair<std::uint8_t, std::string>> out;
  EXPECT_EQ(bytes.substr(0, 16), SegmentHeader());
  std::size_t at = 16;
  while (at < bytes.size()) {
    if (bytes.size() - at < 9) {
      ADD_FAILURE() << "short record header at " << at;
      break;
    }
    std::uint32_t length = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      length |= static_cast<std::uint32_t>(
                    static_cast<unsigned char>(bytes[at + 4 + i]))
                << (8 * i);
    }
    std::string covered = bytes.substr(at + 4, 5 + length);
    EXPECT_EQ(bytes.substr(at, 4),
              Fixed32(ReferenceMask(ReferenceCrc32c(covered))))
        << "checksum of record at " << at;
    out.emplace_back(static_cast<std::uint8_t>(bytes[at + 8]),
                     bytes.substr(at + 9, length));
    at += 9 + length;
  }
  return out;
}

// A journal of one segment: the open record, then ops 1..n, each committed
// alone. boundaries[k] is the file size once k ops are in (boundaries[0]
// ends the open record); states[k] the state then.
struct Pristine {
  std::string bytes;
  std::vector<std::size_t> boundaries;
  std::vector<JournalState> states;
};

Pristine MakePristine(const std::string& dir, Seq n) {
  Pristine p;
  auto j = OpenJournal(Options(dir));
  if (j == nullptr) return p;
  p.boundaries.push_back(j->disk_bytes());
  p.states.push_back(j->state());
  for (Seq seq = 1; seq <= n; ++seq) {
    EXPECT_TRUE(
        j->AppendOp("session-1", seq, testing::PreparedOp(Payload(seq))).ok());
    EXPECT_TRUE(j->Commit().ok());
    p.boundaries.push_back(j->disk_bytes());
    p.states.push_back(j->state());
  }
  j.reset();
  p.bytes = ReadFile(dir + "/" + kSegment1);
  EXPECT_EQ(p.bytes.size(), p.boundaries.back());
  return p;
}

// The journal in `dir` is still writable and keeps what is written next.
void ExpectAppendSurvivesReopen(const std::string& dir,
                                const JournalState& base) {
  JournalState expected;
  {
    auto j = OpenJournal(Options(dir));
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->report().truncated_bytes, 0u);
    EXPECT_EQ(j->state(), base);
    ASSERT_TRUE(
        j->AppendOp("session-1", 100, testing::PreparedOp("after repair"))
            .ok());
    ASSERT_TRUE(j->Commit().ok());
    expected = j->state();
  }
  auto j = OpenJournal(Options(dir));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->report().truncated_bytes, 0u);
  EXPECT_EQ(j->state(), expected);
}

// ---------------------------------------------------------------------------
// Torn tails.

TEST(JournalCorruption, TruncationAtEveryOffsetKeepsExactlyThePrefix) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.Sub("pristine"), 4);
  ASSERT_EQ(p.boundaries.size(), 5u);
  const std::string dir = tmp.Sub("cut");
  for (std::size_t cut = 0; cut < p.bytes.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    ResetDir(dir);
    WriteFile(dir + "/" + kSegment1, p.bytes.substr(0, cut));
    JournalState base;
    {
      auto j = OpenJournal(Options(dir));
      ASSERT_NE(j, nullptr);
      if (cut < p.boundaries[0]) {
        // Not even the open record survived: nothing was ever committed, so
        // this is a new journal.
        EXPECT_TRUE(j->report().created);
        EXPECT_EQ(j->incarnation(), 1u);
        EXPECT_TRUE(j->state().sessions.empty());
        EXPECT_EQ(j->report().truncated_bytes, cut < 16 ? cut : cut - 16);
      } else {
        std::size_t k = 0;
        while (k + 1 < p.boundaries.size() && p.boundaries[k + 1] <= cut) ++k;
        EXPECT_FALSE(j->report().created);
        EXPECT_EQ(j->incarnation(), 2u);
        EXPECT_EQ(j->state(), p.states[k]);
        EXPECT_EQ(j->report().truncated_bytes, cut - p.boundaries[k]);
      }
      EXPECT_EQ(j->journal_id(), kTestJournalId);
      base = j->state();
    }
    ExpectAppendSurvivesReopen(dir, base);
  }
}

TEST(JournalCorruption, ZeroFilledTailIsCutOff) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 2);
  WriteFile(tmp.Sub(kSegment1), p.bytes + std::string(4096, '\0'));
  auto j = OpenJournal(Options(tmp.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), p.states[2]);
  EXPECT_EQ(j->report().truncated_bytes, 4096u);
}

// ---------------------------------------------------------------------------
// Bit flips.

// Open fails with kCorrupt naming the segment and the offset of the damage,
// and leaves the file exactly as it was.
void ExpectCorruptAt(const std::string& dir, std::size_t offset) {
  const std::string before = ReadFile(dir + "/" + kSegment1);
  Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << r.status().ToString();
  EXPECT_NE(r.status().message().find(std::string(kSegment1) + " at offset " +
                                      std::to_string(offset)),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(ReadFile(dir + "/" + kSegment1), before);
}

// The last record was written whole (and, in sync level, synced): a flipped
// bit in it is damage to an acknowledged record, never a torn write, even
// when it lands in the length field and makes the record run past the end.
TEST(JournalCorruption, BitFlipAnywhereInTheLastRecordIsCorrupt) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.Sub("pristine"), 4);
  const std::size_t begin = p.boundaries[3];
  const std::size_t end = p.boundaries[4];
  // Covers the masked crc (4 bytes), length (4), type (1) and the body.
  ASSERT_GT(end - begin, 20u);
  const std::string dir = tmp.Sub("flip");
  for (std::size_t at = begin; at < end; ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      SCOPED_TRACE("byte " + std::to_string(at) + " bit " +
                   std::to_string(bit));
      std::string bytes = p.bytes;
      bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
      ResetDir(dir);
      WriteFile(dir + "/" + kSegment1, bytes);
      ExpectCorruptAt(dir, begin);
    }
  }
}

TEST(JournalCorruption, BitFlipInAnEarlierRecordOfTheLastSegmentIsCorrupt) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 4);
  std::string bytes = p.bytes;
  bytes[p.boundaries[1] + 12] ^= 0x04;  // inside op 2
  WriteFile(tmp.Sub(kSegment1), bytes);
  ExpectCorruptAt(tmp.path(), p.boundaries[1]);
}

TEST(JournalCorruption, DamageBeforeTheLastSegmentIsCorrupt) {
  TempDir tmp;
  JournalOptions o = Options(tmp.path());
  o.segment_bytes = 200;
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    for (Seq seq = 1; seq <= 12; ++seq) {
      ASSERT_TRUE(
          j->AppendOp("session-1", seq, testing::PreparedOp(Payload(seq)))
              .ok());
      ASSERT_TRUE(j->Commit().ok());
    }
  }
  const std::string first = tmp.Sub(kSegment1);
  const std::string pristine = ReadFile(first);
  ASSERT_TRUE(fs::exists(tmp.Sub("seg-000000000003.rjl")));

  std::string flipped = pristine;
  flipped[pristine.size() - 5] ^= 0x01;
  WriteFile(first, flipped);
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find(kSegment1), std::string::npos)
      << r.status().message();
  // Refusing must leave the evidence alone.
  EXPECT_EQ(ReadFile(first), flipped);

  WriteFile(first, pristine.substr(0, pristine.size() - 3));
  EXPECT_EQ(OpenError(o), ErrorCode::kCorrupt);
  WriteFile(first, pristine.substr(0, 10));
  EXPECT_EQ(OpenError(o), ErrorCode::kCorrupt);
  WriteFile(first, pristine + "\x01\x02\x03");
  EXPECT_EQ(OpenError(o), ErrorCode::kCorrupt);

  WriteFile(first, pristine);
  EXPECT_NE(OpenJournal(o), nullptr);
}

// ---------------------------------------------------------------------------
// Hostile fields.

// A length above the limit is never written, so it is damage; one within
// the limit that runs past the end is what a torn write leaves.
TEST(JournalCorruption, HugeLengthInTheTailIsCorruptWithoutAllocating) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 2);
  for (std::uint32_t length : {0xffffffffu, 0x7fffffffu, 0x10000001u}) {
    SCOPED_TRACE("length " + std::to_string(length));
    std::string tail = Fixed32(0x12345678) + Fixed32(length) +
                       static_cast<char>(kTypeOp) + std::string(100, 'g');
    WriteFile(tmp.Sub(kSegment1), p.bytes + tail);
    ExpectCorruptAt(tmp.path(), p.bytes.size());
  }
}

TEST(JournalCorruption, LengthPastTheEndWithinTheLimitIsATornTail) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 2);
  std::string tail = Fixed32(0x12345678) + Fixed32(200) +
                     static_cast<char>(kTypeOp) + std::string(100, 'g');
  WriteFile(tmp.Sub(kSegment1), p.bytes + tail);
  auto j = OpenJournal(Options(tmp.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state(), p.states[2]);
  EXPECT_EQ(j->report().truncated_bytes, tail.size());
  EXPECT_EQ(j->report().truncated_segment, kSegment1);
  EXPECT_EQ(j->report().truncated_offset, p.bytes.size());
}

// Its checksum matches, so the record was written whole: no crash made it.
TEST(JournalCorruption, ChecksummedButMalformedTailRecordIsCorrupt) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 2);
  const std::string payload = "p";
  const std::vector<std::string> bad_records = {
      // A release listing 2^60 seqs in a few bytes.
      Record(kTypeRelease,
             Bytes("session-1") + Varint(1) + Varint(std::uint64_t{1} << 60)),
      // A session name claiming 2^62 bytes.
      Record(kTypeOp, Varint(std::uint64_t{1} << 62) + "abc"),
      // An 11-byte varint.
      Record(kTypeOp, Bytes("session-1") + std::string(10, '\xff') + '\x01'),
      // Trailing bytes after a complete body.
      Record(kTypeOp,
             OpBody("session-1", 3, 1, "billing", 0, 1, &payload) + "x"),
      // Unknown flag bits.
      Record(kTypeOp, Bytes("session-1") + Varint(3) + '\x01' +
                          Bytes("billing") + Varint(0) + Varint(1) + '\x04'),
      // Well formed, but seq 0 is not a valid op.
      Record(kTypeOp, OpBody("session-1", 0, 1, "billing", 0, 1, &payload)),
      // Well formed, but state 9 does not exist.
      Record(kTypeOp, OpBody("session-1", 3, 9, "billing", 0, 1, &payload)),
      // A status that does not fit 16 bits.
      Record(kTypeOp, Bytes("session-1") + Varint(3) + '\x01' +
                          Bytes("billing") + Varint(70000) + Varint(1) + '\0'),
      // A session record whose watermark is above its next seq.
      Record(kTypeSession, Bytes("session-1") + Varint(2) + Varint(5)),
      // A snapshot marker with a body.
      Record(kTypeSnapshotBegin, "x"),
      // An open record with role 3.
      Record(kTypeOpen, OpenBody(3, "client-1", 1, kTestJournalId)),
  };
  for (std::size_t i = 0; i < bad_records.size(); ++i) {
    SCOPED_TRACE("bad record " + std::to_string(i));
    WriteFile(tmp.Sub(kSegment1), p.bytes + bad_records[i]);
    ExpectCorruptAt(tmp.path(), p.bytes.size());
  }
}

TEST(JournalCorruption, UnknownRecordTypeIsCorruptEvenInTheTail) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 1);
  for (std::uint8_t type :
       {std::uint8_t{0}, std::uint8_t{6}, std::uint8_t{200}}) {
    WriteFile(tmp.Sub(kSegment1), p.bytes + Record(type, "future"));
    Result<std::unique_ptr<Journal>> r = Journal::Open(Options(tmp.path()));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
    EXPECT_NE(r.status().message().find("unknown type"), std::string::npos);
  }
}

TEST(JournalCorruption, OpenRecordOfAnotherJournalIsCorrupt) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.path(), 1);
  WriteFile(tmp.Sub(kSegment1),
            p.bytes + Record(kTypeOpen, OpenBody(1, "client-1", 9, 12345)));
  EXPECT_EQ(OpenError(Options(tmp.path())), ErrorCode::kCorrupt);
}

TEST(JournalCorruption, RecordsWithoutAnOpenRecordAreCorrupt) {
  TempDir tmp;
  const std::string payload = "p";
  WriteFile(tmp.Sub(kSegment1),
            SegmentHeader() +
                Record(kTypeOp, OpBody("s", 1, 1, "svc", 0, 1, &payload)));
  EXPECT_EQ(OpenError(Options(tmp.path())), ErrorCode::kCorrupt);
}

TEST(JournalCorruption, FormatVersionZeroIsCorrupt) {
  TempDir tmp;
  WriteFile(tmp.Sub(kSegment1), SegmentHeader(0));
  EXPECT_EQ(OpenError(Options(tmp.path())), ErrorCode::kCorrupt);
}

// ---------------------------------------------------------------------------
// The documented format, both ways.

TEST(JournalCorruption, HandBuiltSegmentsReplayAsDocumented) {
  TempDir tmp;
  const std::string request = "hello";
  const std::string response = "world";
  std::string seg1 =
      SegmentHeader() +
      Record(kTypeOpen, OpenBody(1, "client-1", 5, 0xabcdef)) +
      Record(kTypeOp, OpBody("s", 3, 1, "svc", 0, 5, &request)) +
      Record(kTypeOp, OpBody("s", 3, 3, "svc", 13, 5, &response)) +
      Record(kTypeOp, OpBody("s", 4, 2, "svc", 0, 5, nullptr)) +
      Record(kTypeOp, OpBody("t", 1, 1, "svc", 0, 5, &request)) +
      Record(kTypeRelease, Bytes("t") + Varint(1) + Varint(1) + Varint(1));
  WriteFile(tmp.Sub(kSegment1), seg1);
  JournalState after_seg1;
  {
    auto j = OpenJournal(Options(tmp.path()));
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->incarnation(), 6u);
    EXPECT_EQ(j->journal_id(), 0xabcdefu);
    EXPECT_EQ(j->report().records, 6u);
    const JournalSession& s = j->state().sessions.at("s");
    EXPECT_EQ(s.next_seq, 5u);
    EXPECT_EQ(s.ops.at(3).payload, "world");
    EXPECT_EQ(s.ops.at(3).state, 3);
    EXPECT_EQ(s.ops.at(3).status, ErrorCode::kHandlerFailed);
    EXPECT_EQ(s.ops.at(3).incarnation, 5u);
    EXPECT_TRUE(s.ops.at(4).payload.empty());
    const JournalSession& t = j->state().sessions.at("t");
    EXPECT_TRUE(t.ops.empty());  // client role: released entries go
    EXPECT_EQ(t.next_seq, 2u);
    after_seg1 = j->state();
  }

  // A later snapshot segment replaces all of it.
  std::string seg2 = SegmentHeader() + Record(kTypeSnapshotBegin, "") +
                     Record(kTypeOpen, OpenBody(1, "client-1", 6, 0xabcdef)) +
                     Record(kTypeSession, Bytes("u") + Varint(10) + Varint(8)) +
                     Record(kTypeOp, OpBody("u", 8, 2, "svc", 0, 4, &request));
  WriteFile(tmp.Sub("seg-000000000007.rjl"), seg2);
  auto j = OpenJournal(Options(tmp.path()));
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->incarnation(), 7u);
  ASSERT_EQ(j->state().sessions.size(), 1u);
  const JournalSession& u = j->state().sessions.at("u");
  EXPECT_EQ(u.next_seq, 10u);
  EXPECT_EQ(u.released_below, 8u);
  EXPECT_EQ(u.ops.at(8).incarnation, 4u);
  EXPECT_FALSE(fs::exists(tmp.Sub(kSegment1)));  // superseded, removed
}

TEST(JournalCorruption, DigestFollowsTheFlagsAsDocumented) {
  TempDir tmp;
  JournalOptions o = Options(tmp.path());
  o.role = JournalRole::kServer;
  o.owner_id = "server-1";
  {
    auto j = OpenJournal(o);
    ASSERT_NE(j, nullptr);
    JournalOp executed;
    executed.state = 2;
    executed.payload = "out";
    executed.digest = 0x1122334455667788ULL;
    ASSERT_TRUE(j->AppendOp("s", 1, executed).ok());
    ASSERT_TRUE(j->Commit().ok());
  }
  auto records = ParseSegment(ReadFile(tmp.Sub(kSegment1)));
  ASSERT_EQ(records.size(), 2u);
  // flags 0x03: the digest (fixed64) and then the payload follow.
  EXPECT_EQ(records[1],
            std::make_pair(kTypeOp,
                           Bytes("s") + Varint(1) + '\x02' + Bytes("") +
                               Varint(0) + Varint(1) + '\x03' +
                               Fixed64(0x1122334455667788ULL) + Bytes("out")));
}

TEST(JournalCorruption, WrittenSegmentsFollowTheDocumentedFraming) {
  TempDir tmp;
  {
    auto j = OpenJournal(Options(tmp.path()));
    ASSERT_NE(j, nullptr);
    ASSERT_TRUE(j->AppendOp("s", 2, testing::PreparedOp("abc")).ok());
    JournalOp sent = testing::PreparedOp("");
    sent.state = 2;
    ASSERT_TRUE(j->AppendOp("s", 2, sent).ok());
    ASSERT_TRUE(j->AppendRelease("s", 1, {2}).ok());
    ASSERT_TRUE(j->Commit().ok());
  }
  const std::string abc = "abc";
  auto records = ParseSegment(ReadFile(tmp.Sub(kSegment1)));
  ASSERT_EQ(records.size(), 4u);
  // (The digest of server op records, flags bit 1, is checked below.)
  EXPECT_EQ(records[0], std::make_pair(kTypeOpen, OpenBody(1, "client-1", 1,
                                                           kTestJournalId)));
  EXPECT_EQ(records[1],
            std::make_pair(kTypeOp, OpBody("s", 2, 1, "billing", 0, 1, &abc)));
  EXPECT_EQ(records[2], std::make_pair(kTypeOp, OpBody("s", 2, 2, "billing", 0,
                                                       1, nullptr)));
  EXPECT_EQ(records[3],
            std::make_pair(kTypeRelease,
                           Bytes("s") + Varint(1) + Varint(1) + Varint(2)));

  // Compaction writes: snapshot marker, open record, session, live ops.
  {
    auto j = OpenJournal(Options(tmp.path()));
    ASSERT_NE(j, nullptr);
    ASSERT_TRUE(j->AppendOp("s", 3, testing::PreparedOp("def")).ok());
    ASSERT_TRUE(j->Compact().ok());
  }
  auto names = std::vector<std::string>();
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    std::string name = e.path().filename();
    if (name.starts_with("seg-")) names.push_back(name);
  }
  ASSERT_EQ(names, std::vector<std::string>{"seg-000000000002.rjl"});
  const std::string def = "def";
  records = ParseSegment(ReadFile(tmp.Sub(names[0])));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0], std::make_pair(kTypeSnapshotBegin, std::string()));
  EXPECT_EQ(records[1], std::make_pair(kTypeOpen, OpenBody(1, "client-1", 2,
                                                           kTestJournalId)));
  EXPECT_EQ(records[2],
            std::make_pair(kTypeSession, Bytes("s") + Varint(4) + Varint(1)));
  EXPECT_EQ(records[3],
            std::make_pair(kTypeOp, OpBody("s", 3, 1, "billing", 0, 2, &def)));
}

// ---------------------------------------------------------------------------
// Random damage.

int SoakScale() {
  const char* s = std::getenv("REJOIN_SOAK_SCALE");
  int scale = s != nullptr ? std::atoi(s) : 1;
  return scale > 0 ? scale : 1;
}

TEST(JournalCorruption, RandomMutationsNeverCrashReplay) {
  TempDir tmp;
  const Pristine p = MakePristine(tmp.Sub("pristine"), 12);
  const std::string dir = tmp.Sub("fuzz");
  std::mt19937_64 rng(20240611);
  const int rounds = 400 * SoakScale();
  int opened = 0;
  int refused = 0;
  for (int round = 0; round < rounds; ++round) {
    std::string bytes = p.bytes;
    int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !bytes.empty(); ++m) {
      std::size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.resize(at);
          break;
        case 2:
          bytes.insert(at,
                       std::string(1 + rng() % 8, static_cast<char>(rng())));
          break;
        default:
          bytes.erase(at, 1 + rng() % 16);
          break;
      }
    }
    ResetDir(dir);
    WriteFile(dir + "/" + kSegment1, bytes);
    Result<std::unique_ptr<Journal>> r = Journal::Open(Options(dir));
    if (r.ok()) {
      ++opened;
      // Whatever survived is a prefix of what was written.
      const JournalState& got = (*r)->state();
      bool is_prefix =
          std::any_of(p.states.begin(), p.states.end(),
                      [&](const JournalState& s) { return s == got; });
      EXPECT_TRUE(is_prefix) << "round " << round;
      // And nothing cut off held an intact record.
      const std::size_t kept = bytes.size() - (*r)->report().truncated_bytes;
      for (std::size_t k = 0; k + 1 < p.boundaries.size(); ++k) {
        std::string record = p.bytes.substr(
            p.boundaries[k], p.boundaries[k + 1] - p.boundaries[k]);
        EXPECT_EQ(bytes.find(record, kept), std::string::npos)
            << "round " << round << ": op " << k + 1 << " cut off intact";
      }
    } else {
      ++refused;
      EXPECT_EQ(ReadFile(dir + "/" + kSegment1), bytes) << "round " << round;
      ErrorCode code = r.status().code();
      EXPECT_TRUE(code == ErrorCode::kCorrupt ||
                  code == ErrorCode::kJournalVersion)
          << "round " << round << ": " << r.status().ToString();
    }
  }
  RecordProperty("opened", opened);
  RecordProperty("refused", refused);
  // Cuts at random places are torn tails, most other damage is not.
  EXPECT_GT(opened, rounds / 8);
  EXPECT_GT(refused, rounds / 4);
}

// ---------------------------------------------------------------------------
// The checksum itself.

TEST(Crc32c, KnownAnswers) {
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xe3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros.data(), zeros.size()), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(crc32c::Value(ones.data(), ones.size()), 0x62a8ab43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c::Value(ascending.data(), ascending.size()), 0x46dd794eu);
  EXPECT_EQ(crc32c::Value("", 0), 0u);
}

TEST(Crc32c, ExtendEqualsWholeAndImplementationsAgree) {
  std::mt19937_64 rng(7);
  std::string data(3100, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 1000u, 2999u}) {
    for (std::size_t offset : {0u, 1u, 3u}) {
      const char* p = data.data() + offset;
      std::uint32_t whole = crc32c::ExtendPortable(0, p, n);
      EXPECT_EQ(whole, ReferenceCrc32c(std::string(p, n)));
      EXPECT_EQ(crc32c::Value(p, n), whole);
      if (crc32c::HardwareAvailable()) {
        EXPECT_EQ(crc32c::ExtendHardware(0, p, n), whole);
      }
      std::size_t split = n / 3;
      EXPECT_EQ(crc32c::Extend(crc32c::Value(p, split), p + split, n - split),
                whole);
    }
  }
}

TEST(Crc32c, MaskRoundTripsAndChangesTheValue) {
  for (std::uint32_t crc : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_EQ(crc32c::Unmask(crc32c::Mask(crc)), crc);
    EXPECT_NE(crc32c::Mask(crc), crc);
    EXPECT_EQ(crc32c::Mask(crc), ReferenceMask(crc));
  }
}

}  // namespace
}  // namespace rejoin
