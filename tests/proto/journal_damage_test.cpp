// Damage from outside, for client and server journals: a flipped bit, a
// zeroed record or a record cut short, in the middle of the last segment
// (intact records after it), in its last record, and in an earlier
// segment. Damage followed by intact records must fail open with kCorrupt
// naming file and offset and leave every byte in place; only what a crash
// can leave (a record running past the end, zero fill) is cut, and the cut
// is reported. Also: a huge sparse segment, the read-only Inspect, and the
// operator's Salvage.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rejoin/proto/journal.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

namespace fs = std::filesystem;

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr JournalId kJournalId = 0x5eed5eed5eed5eedu;
constexpr JournalId kSalvagedId = 0x0123456789abcdefu;
constexpr char kSeg1[] = "seg-000000000001.rjl";
constexpr char kSession[] = "session-1";

JournalOptions Options(const std::string& dir, JournalRole role,
                       std::size_t segment_bytes = 64 << 20) {
  JournalOptions o;
  o.dir = dir;
  o.role = role;
  o.owner_id = role == JournalRole::kClient ? "client-1" : "server-1";
  o.new_journal_id = [] { return kJournalId; };
  o.segment_bytes = segment_bytes;
  return o;
}

std::string RoleName(JournalRole role) {
  return role == JournalRole::kClient ? "client" : "server";
}

// Writes ops 1..n of one session, each in its own commit. Server ops
// alternate RECEIVED and EXECUTED, client ops PREPARED and SENT, so both
// roles' records are exercised.
void WriteOps(const JournalOptions& o, Seq n) {
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Journal& j = **r;
  for (Seq seq = 1; seq <= n; ++seq) {
    JournalOp op;
    op.state = static_cast<std::uint8_t>(seq % 2 == 1 ? 1 : 2);
    op.service = "billing";
    op.payload = "payload-" + std::to_string(seq) + std::string(seq * 3, '.');
    ASSERT_TRUE(j.AppendOp(kSession, seq, op).ok());
    ASSERT_TRUE(j.Commit().ok());
  }
}

// Start offsets of a segment's records, plus the end of the last one.
std::vector<std::size_t> RecordOffsets(const std::string& bytes) {
  std::vector<std::size_t> at;
  std::size_t p = 16;
  while (p + 9 <= bytes.size()) {
    at.push_back(p);
    std::size_t length = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      length |=
          static_cast<std::size_t>(static_cast<unsigned char>(bytes[p + 4 + i]))
          << (8 * i);
    }
    p += 9 + length;
  }
  at.push_back(p);
  return at;
}

// Every file of a directory and its bytes.
std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = ReadFile(e.path().string());
  }
  return out;
}

enum class Damage { kBitFlip, kZero, kTruncate };

std::string DamageName(Damage d) {
  switch (d) {
    case Damage::kBitFlip:
      return "bit flip";
    case Damage::kZero:
      return "zeroed record";
    case Damage::kTruncate:
      return "record cut short";
  }
  return "";
}

// Applies `d` to the record [begin, end) of `bytes`.
std::string Damaged(std::string bytes, Damage d, std::size_t begin,
                    std::size_t end) {
  const std::size_t mid = begin + (end - begin) / 2;
  switch (d) {
    case Damage::kBitFlip:
      bytes[mid] = static_cast<char>(bytes[mid] ^ 0x10);
      break;
    case Damage::kZero:
      std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(begin),
                bytes.begin() + static_cast<std::ptrdiff_t>(end), '\0');
      break;
    case Damage::kTruncate:
      bytes.erase(mid, end - mid);
      break;
  }
  return bytes;
}

// Open fails with kCorrupt naming `segment` and `offset`, and no file of
// the directory changed.
void ExpectRefused(const JournalOptions& o, const std::string& segment,
                   std::size_t offset) {
  const auto before = DirContents(o.dir);
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << r.status().ToString();
  EXPECT_NE(r.status().message().find(segment + " at offset " +
                                      std::to_string(offset)),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(DirContents(o.dir), before);
}

const JournalRole kRoles[] = {JournalRole::kClient, JournalRole::kServer};
const Damage kDamages[] = {Damage::kBitFlip, Damage::kZero, Damage::kTruncate};

TEST(JournalDamage, DamageFollowedByIntactRecordsIsCorruptAndNothingIsCut) {
  for (JournalRole role : kRoles) {
    for (Damage d : kDamages) {
      SCOPED_TRACE(RoleName(role) + ", " + DamageName(d));
      TempDir tmp;
      const JournalOptions o = Options(tmp.path(), role);
      WriteOps(o, 5);
      const std::string pristine = ReadFile(tmp.Sub(kSeg1));
      const std::vector<std::size_t> at = RecordOffsets(pristine);
      ASSERT_EQ(at.size(), 7u);  // the open record, 5 ops, the end
      // Op 2: three intact records follow it.
      WriteFile(tmp.Sub(kSeg1), Damaged(pristine, d, at[2], at[3]));
      ExpectRefused(o, kSeg1, at[2]);
      // Inspect sees the same and changes nothing either.
      const auto before = DirContents(tmp.path());
      Result<JournalInspection> seen = Journal::Inspect(tmp.path());
      ASSERT_TRUE(seen.ok()) << seen.status().ToString();
      EXPECT_EQ(seen->integrity, JournalIntegrity::kCorrupt);
      EXPECT_EQ(seen->damaged_segment, kSeg1);
      EXPECT_EQ(seen->damaged_offset, at[2]);
      EXPECT_EQ(DirContents(tmp.path()), before);
    }
  }
}

TEST(JournalDamage, BitFlipInTheLastRecordIsCorrupt) {
  for (JournalRole role : kRoles) {
    SCOPED_TRACE(RoleName(role));
    TempDir tmp;
    const JournalOptions o = Options(tmp.path(), role);
    WriteOps(o, 4);
    const std::string pristine = ReadFile(tmp.Sub(kSeg1));
    const std::vector<std::size_t> at = RecordOffsets(pristine);
    const std::size_t last = at[at.size() - 2];
    // In the header (checksum, length, type) and in the body.
    for (std::size_t pos : {last, last + 5, last + 8, last + 12}) {
      std::string bytes = pristine;
      bytes[pos] = static_cast<char>(bytes[pos] ^ 0x02);
      WriteFile(tmp.Sub(kSeg1), bytes);
      ExpectRefused(o, kSeg1, last);
    }
  }
}

// A last record cut short or zeroed is exactly what a crash leaves (a kill
// -9 inside write, a power loss that kept the size but not the data): a
// torn tail, cut off and reported, and the journal opens.
TEST(JournalDamage, TruncatedOrZeroedLastRecordIsAReportedTornTail) {
  for (JournalRole role : kRoles) {
    for (Damage d : {Damage::kZero, Damage::kTruncate}) {
      SCOPED_TRACE(RoleName(role) + ", " + DamageName(d));
      TempDir tmp;
      const JournalOptions o = Options(tmp.path(), role);
      WriteOps(o, 4);
      const std::string pristine = ReadFile(tmp.Sub(kSeg1));
      const std::vector<std::size_t> at = RecordOffsets(pristine);
      const std::size_t begin = at[at.size() - 2];
      const std::size_t end = at.back();
      const std::string bytes = Damaged(pristine, d, begin, end);
      WriteFile(tmp.Sub(kSeg1), bytes);
      Result<std::unique_ptr<Journal>> r = Journal::Open(o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      const ReplayReport& report = (*r)->report();
      EXPECT_EQ(report.truncated_bytes, bytes.size() - begin);
      EXPECT_EQ(report.truncated_segment, kSeg1);
      EXPECT_EQ(report.truncated_offset, begin);
      EXPECT_FALSE(report.truncated_reason.empty());
      const JournalSession& s = (*r)->state().sessions.at(kSession);
      EXPECT_EQ(s.next_seq, 4u);  // op 4 was the torn one
    }
  }
}

TEST(JournalDamage, DamageInAnEarlierSegmentIsCorrupt) {
  for (JournalRole role : kRoles) {
    for (Damage d : kDamages) {
      // In the middle of segment 1 and in its last record.
      for (bool last_record : {false, true}) {
        SCOPED_TRACE(RoleName(role) + ", " + DamageName(d) +
                     (last_record ? ", last record" : ", middle"));
        TempDir tmp;
        const JournalOptions o = Options(tmp.path(), role, 300);
        WriteOps(o, 12);
        ASSERT_TRUE(fs::exists(tmp.Sub("seg-000000000003.rjl")));
        const std::string pristine = ReadFile(tmp.Sub(kSeg1));
        const std::vector<std::size_t> at = RecordOffsets(pristine);
        ASSERT_GE(at.size(), 4u);
        const std::size_t k = last_record ? at.size() - 2 : 1;
        WriteFile(tmp.Sub(kSeg1), Damaged(pristine, d, at[k], at[k + 1]));
        ExpectRefused(o, kSeg1, at[k]);
      }
    }
  }
}

// A compaction that stopped before deleting the segments its snapshot
// supersedes, then damage inside the snapshot: the open fails and keeps
// those segments (they hold what the damaged part held), and salvage keeps
// them aside.
TEST(JournalDamage, DamagedSnapshotKeepsTheSegmentsItSuperseded) {
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kServer);
  WriteOps(o, 6);
  const std::string old_segment = ReadFile(tmp.Sub(kSeg1));
  {
    Result<std::unique_ptr<Journal>> r = Journal::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE((*r)->Compact().ok());
  }
  ASSERT_FALSE(fs::exists(tmp.Sub(kSeg1)));
  WriteFile(tmp.Sub(kSeg1), old_segment);
  std::string snapshot_name;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".rjl") && name != kSeg1) snapshot_name = name;
  }
  ASSERT_FALSE(snapshot_name.empty());
  const std::string snapshot = ReadFile(tmp.Sub(snapshot_name));
  const std::vector<std::size_t> at = RecordOffsets(snapshot);
  // Records: snapshot-begin, open, session, then the ops; the first op is
  // damaged.
  ASSERT_GE(at.size(), 6u);
  WriteFile(tmp.Sub(snapshot_name),
            Damaged(snapshot, Damage::kBitFlip, at[3], at[4]));

  ExpectRefused(o, snapshot_name, at[3]);
  Result<SalvageReport> s = Journal::Salvage(tmp.path());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::vector<std::string> aside = {std::string(kSeg1) + ".damaged",
                                          snapshot_name + ".damaged"};
  EXPECT_EQ(s->kept_aside, aside);
  EXPECT_EQ(ReadFile(tmp.Sub(std::string(kSeg1) + ".damaged")), old_segment);
  EXPECT_TRUE(Journal::Open(o).ok());
}

// The torn tails a crash leaves still open, and the cut is reported.
TEST(JournalDamage, PrefixOfARecordAndZeroFillAreCutAndReported) {
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kServer);
  WriteOps(o, 3);
  std::string pristine = ReadFile(tmp.Sub(kSeg1));
  const std::string next_record = [&] {
    TempDir other;
    WriteOps(Options(other.path(), JournalRole::kServer), 4);
    std::string b = ReadFile(other.Sub(kSeg1));
    std::vector<std::size_t> at = RecordOffsets(b);
    return b.substr(at[4], at[5] - at[4]);  // op 4
  }();
  const std::vector<std::pair<std::string, std::string>> tails = {
      {"prefix", next_record.substr(0, next_record.size() - 3)},
      {"header only", next_record.substr(0, 6)},
      {"prefix then zeros",
       next_record.substr(0, 12) + std::string(next_record.size() - 14, '\0')},
      {"zero fill", std::string(8192, '\0')},
  };
  for (const auto& [what, tail] : tails) {
    SCOPED_TRACE(what);
    WriteFile(tmp.Sub(kSeg1), pristine + tail);
    Result<JournalInspection> seen = Journal::Inspect(tmp.path());
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(seen->integrity, JournalIntegrity::kTornTail);
    EXPECT_EQ(seen->torn_bytes, tail.size());
    EXPECT_EQ(ReadFile(tmp.Sub(kSeg1)), pristine + tail);  // not cut
    {
      Result<std::unique_ptr<Journal>> r = Journal::Open(o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)->report().truncated_bytes, tail.size());
      EXPECT_EQ((*r)->report().truncated_offset, pristine.size());
    }
    // Cut, then one more open record appended by that open.
    pristine = ReadFile(tmp.Sub(kSeg1));
  }
}

void MakeSparse(const std::string& path, off_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, size), 0);
  ::close(fd);
}

TEST(JournalDamage, HugeSparseSegmentIsAClearErrorNotAnAbort) {
  constexpr off_t k64GiB = off_t{64} << 30;
  for (bool extend_existing : {false, true}) {
    SCOPED_TRACE(extend_existing ? "segment 1 extended" : "new segment 2");
    TempDir tmp;
    const JournalOptions o = Options(tmp.path(), JournalRole::kClient);
    WriteOps(o, 2);
    const std::string name =
        extend_existing ? std::string(kSeg1) : "seg-000000000002.rjl";
    MakeSparse(tmp.Sub(name), k64GiB);
    Result<std::unique_ptr<Journal>> r = Journal::Open(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
    EXPECT_NE(r.status().message().find(name), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(std::to_string(k64GiB)),
              std::string::npos)
        << r.status().message();
    EXPECT_EQ(fs::file_size(tmp.Sub(name)),
              static_cast<std::uintmax_t>(k64GiB));
    Result<JournalInspection> seen = Journal::Inspect(tmp.path());
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(seen->integrity, JournalIntegrity::kCorrupt);
  }
}

long PeakRssKib() {
  struct rusage u;
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// A zero-filled tail is a torn tail whatever its size, and replay reads it
// without holding the segment in memory.
TEST(JournalDamage, LargeZeroTailIsCutWithoutReadingItIntoMemory) {
  constexpr off_t k1GiB = off_t{1} << 30;
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kClient);
  WriteOps(o, 2);
  const std::uintmax_t size = fs::file_size(tmp.Sub(kSeg1));
  MakeSparse(tmp.Sub(kSeg1), k1GiB);
  const long before = PeakRssKib();
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->report().truncated_bytes, k1GiB - size);
  // Far less than the segment: the reader holds a bounded window.
  EXPECT_LT(PeakRssKib() - before, 256 * 1024);
}

// ---------------------------------------------------------------------------
// Inspect.

TEST(JournalInspect, ReportsTheJournalAndChangesNothing) {
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kServer, 300);
  WriteOps(o, 12);
  const std::string first = ReadFile(tmp.Sub(kSeg1));
  {
    Result<std::unique_ptr<Journal>> r = Journal::Open(o);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Compact().ok());
  }
  // A superseded segment and a temporary one are what a crash inside
  // compaction leaves; open would delete both.
  ASSERT_FALSE(fs::exists(tmp.Sub(kSeg1)));
  WriteFile(tmp.Sub(kSeg1), first);
  WriteFile(tmp.Sub("seg-000000000099.rjl.tmp"), "unfinished");
  fs::remove(tmp.Sub("LOCK"));
  const auto before = DirContents(tmp.path());

  Result<JournalInspection> seen = Journal::Inspect(tmp.path());
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  EXPECT_EQ(DirContents(tmp.path()), before);  // no LOCK, nothing removed
  EXPECT_TRUE(seen->has_open_record);
  EXPECT_EQ(seen->role, JournalRole::kServer);
  EXPECT_EQ(seen->owner, "server-1");
  EXPECT_EQ(seen->journal_id, kJournalId);
  EXPECT_EQ(seen->incarnation, 2u);
  EXPECT_EQ(seen->integrity, JournalIntegrity::kOk);
  EXPECT_FALSE(seen->locked);
  ASSERT_EQ(seen->state.sessions.size(), 1u);
  EXPECT_EQ(seen->state.sessions.at(kSession).next_seq, 13u);
  EXPECT_EQ(seen->state.sessions.at(kSession).ops.size(), 12u);
  ASSERT_FALSE(seen->segments.empty());
  EXPECT_EQ(seen->segments.front().name, kSeg1);
  EXPECT_TRUE(seen->segments.front().superseded);
  EXPECT_TRUE(seen->segments.back().snapshot);
  EXPECT_FALSE(seen->segments.back().superseded);
  EXPECT_EQ(seen->other_files,
            std::vector<std::string>{"seg-000000000099.rjl.tmp"});

  // The same state as open gives (which then does clean up).
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->state(), seen->state);
  // And a journal in use is reported as such.
  Result<JournalInspection> live = Journal::Inspect(tmp.path());
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(live->locked);
}

TEST(JournalInspect, MissingDirectoryIsNotFoundAndNotCreated) {
  TempDir tmp;
  Result<JournalInspection> seen = Journal::Inspect(tmp.Sub("nothing"));
  ASSERT_FALSE(seen.ok());
  EXPECT_EQ(seen.status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(tmp.Sub("nothing")));
}

// ---------------------------------------------------------------------------
// Salvage.

TEST(JournalSalvage, KeepsThePrefixRenamesTheJournalAndRaisesNextSeq) {
  for (JournalRole role : kRoles) {
    SCOPED_TRACE(RoleName(role));
    TempDir tmp;
    const JournalOptions o = Options(tmp.path(), role);
    WriteOps(o, 5);
    const std::string pristine = ReadFile(tmp.Sub(kSeg1));
    const std::vector<std::size_t> at = RecordOffsets(pristine);
    const std::string damaged =
        Damaged(pristine, Damage::kBitFlip, at[3], at[4]);  // op 3
    WriteFile(tmp.Sub(kSeg1), damaged);
    ASSERT_EQ(Journal::Open(o).status().code(), ErrorCode::kCorrupt);

    Result<SalvageReport> s =
        Journal::Salvage(tmp.path(), [] { return kSalvagedId; });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->role, role);
    EXPECT_EQ(s->old_journal_id, kJournalId);
    EXPECT_EQ(s->new_journal_id, kSalvagedId);
    EXPECT_EQ(s->ops, 2u);
    EXPECT_EQ(s->kept_aside,
              std::vector<std::string>{std::string(kSeg1) + ".damaged"});
    EXPECT_EQ(ReadFile(tmp.Sub(std::string(kSeg1) + ".damaged")), damaged);
    EXPECT_FALSE(fs::exists(tmp.Sub(kSeg1)));

    Result<std::unique_ptr<Journal>> r = Journal::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Journal& j = **r;
    EXPECT_EQ(j.journal_id(), kSalvagedId);
    EXPECT_EQ(j.incarnation(), 3u);  // 1 recorded, 2 by the salvage
    const JournalSession& session = j.state().sessions.at(kSession);
    EXPECT_EQ(session.next_seq, 3u + kSalvageSeqGap);
    EXPECT_EQ(session.ops.size(), 2u);
    EXPECT_TRUE(session.ops.contains(1));
    EXPECT_TRUE(session.ops.contains(2));
    // Still kept aside after open, and the journal is an ordinary one.
    EXPECT_TRUE(fs::exists(tmp.Sub(std::string(kSeg1) + ".damaged")));
    Result<JournalInspection> seen = Journal::Inspect(tmp.path());
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(seen->integrity, JournalIntegrity::kOk);
  }
}

TEST(JournalSalvage, DamageInAnEarlierSegmentKeepsEveryLaterSegmentAside) {
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kClient, 300);
  WriteOps(o, 12);
  const std::string pristine = ReadFile(tmp.Sub(kSeg1));
  const std::vector<std::size_t> at = RecordOffsets(pristine);
  WriteFile(tmp.Sub(kSeg1), Damaged(pristine, Damage::kZero, at[2], at[3]));
  std::vector<std::string> segments;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    std::string name = e.path().filename().string();
    if (name.ends_with(".rjl")) segments.push_back(name + ".damaged");
  }
  std::sort(segments.begin(), segments.end());
  ASSERT_GE(segments.size(), 3u);

  Result<SalvageReport> s = Journal::Salvage(tmp.path());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->kept_aside, segments);
  EXPECT_NE(s->new_journal_id, kJournalId);
  Result<std::unique_ptr<Journal>> r = Journal::Open(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->journal_id(), s->new_journal_id);
  EXPECT_EQ((*r)->state().sessions.at(kSession).next_seq, 2u + kSalvageSeqGap);
}

TEST(JournalSalvage, RefusesAnIntactOrTornOrOpenJournalAndChangesNothing) {
  TempDir tmp;
  const JournalOptions o = Options(tmp.path(), JournalRole::kClient);
  WriteOps(o, 3);
  auto before = DirContents(tmp.path());
  Result<SalvageReport> s = Journal::Salvage(tmp.path());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DirContents(tmp.path()), before);

  WriteFile(tmp.Sub(kSeg1), ReadFile(tmp.Sub(kSeg1)) + std::string(64, '\0'));
  before = DirContents(tmp.path());
  s = Journal::Salvage(tmp.path());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DirContents(tmp.path()), before);

  Result<std::unique_ptr<Journal>> open = Journal::Open(o);
  ASSERT_TRUE(open.ok());
  s = Journal::Salvage(tmp.path());
  EXPECT_EQ(s.status().code(), ErrorCode::kJournalLocked);
}

}  // namespace
}  // namespace rejoin
