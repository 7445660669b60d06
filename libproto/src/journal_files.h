// Internal to the journal: Journal::Files, the lock, the segment files and
// the commit buffer of a kProcess or kSync journal, and SegmentReader, the
// windowed reader replay uses. Its methods live in journal_segments.cpp
// (writing, rolling, compaction), journal_replay.cpp (replay on open),
// journal_damage.cpp (torn tail versus corruption) and journal_salvage.cpp.
// All file access goes through the options' JournalEnv.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal_format.h"
#include "rejoin/proto/journal.h"
#include "rejoin/proto/journal_env.h"

namespace rejoin {

// One segment read through a window: at most one record plus one chunk is
// in memory at a time, whatever size the file claims (JOURNAL.md "Replay
// memory").
class SegmentReader {
 public:
  explicit SegmentReader(JournalReadableFile& file)
      : file_(file), size_(static_cast<std::size_t>(file.size())) {}

  std::size_t size() const { return size_; }

  // Points *out at bytes [offset, offset + n); n <= size() - offset and
  // n <= kRecordHeaderBytes + kMaxBodyBytes. Returns 0 or an errno value.
  int Get(std::size_t offset, std::size_t n, const char** out);

  // Whether every byte from `offset` to the end is zero. Holes of a sparse
  // file are skipped without reading them.
  int AllZeroFrom(std::size_t offset, bool* zero);

 private:
  static constexpr std::size_t kReadChunkBytes = std::size_t{1} << 20;
  JournalReadableFile& file_;
  std::size_t size_;
  std::vector<char> buf_;
  std::size_t base_ = 0;
  std::size_t len_ = 0;
};

class Journal::Files {
 public:
  // A read-only Files (Journal::Inspect) creates, removes, truncates and
  // locks nothing, and learns role and owner from the first open record.
  Files(const JournalOptions& options, bool read_only)
      : env_(options.env != nullptr ? options.env : JournalEnv::Default()),
        dir_(options.dir),
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
    return journal_internal::ParseSegmentName(name, &number) &&
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
  JournalEnv* env() const { return env_; }
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
  // Reports a torn tail of the last segment at `offset` (the whole segment
  // when 0). The cut itself waits for ApplyCut, once replay has succeeded:
  // an open that fails changes nothing. A read-only Files only reports it.
  void CutTail(const std::string& name, std::size_t offset, std::size_t size,
               std::string reason, Journal& j);
  // Makes the cut CutTail reported, if any: truncates segment_file_ or
  // removes the segment.
  Status ApplyCut();
  // Applies one checksummed record. Returns a fatal error, or ok with
  // *problem set when the record is damaged (handled like a bad checksum).
  Status ReplayRecord(journal_internal::RecordType type, std::string_view body,
                      Journal& j, ReplayContext* ctx, std::string* problem);
  // Writes a segment's records after its header; returns 0 or an errno
  // value and counts the bytes written.
  using Fill = std::function<int(JournalWritableFile&, std::size_t*)>;
  // Creates segment `number` under a temporary name, lets `fill` write its
  // records after the header, optionally syncs, and renames it into place.
  // *renamed tells the caller whether the segment now exists.
  Status CreateSegment(std::uint64_t number, bool sync, const Fill& fill,
                       std::unique_ptr<JournalWritableFile>* out,
                       std::size_t* bytes, bool* renamed);
  Status Roll();
  static Fill SnapshotFill(const Journal& j);
  Status SyncDir(const std::string& path);

  JournalEnv* env_;
  std::string dir_;
  bool sync_;
  bool read_only_;
  std::size_t segment_limit_;
  Seen seen_;
  std::unique_ptr<JournalFileLock> lock_;
  std::unique_ptr<JournalWritableFile> segment_file_;
  // The torn tail CutTail reported and ApplyCut makes.
  struct PendingCut {
    std::string name;
    std::size_t offset = 0;
  };
  std::optional<PendingCut> pending_cut_;
  std::uint64_t segment_number_ = 0;
  std::size_t segment_size_ = 0;
  std::vector<std::uint64_t> older_segments_;
  std::size_t older_bytes_ = 0;
  std::uint64_t highest_number_ = 0;  // ever seen, so numbers never repeat
  std::string buffer_;
  // Atomic: Journal::WriteDetached may set it while appends look at it.
  std::atomic<bool> poisoned_{false};
};

// A new journal id: the options' new_journal_id, else the Env's randomness.
Result<JournalId> NewJournalId(const JournalOptions& o);

}  // namespace rejoin
