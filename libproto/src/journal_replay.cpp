// Replay on open (JOURNAL.md §4): list the segments, start at the newest
// snapshot, apply every record through StateApplier, and hand whatever
// stops a segment early to ClassifyTail (journal_damage.cpp).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "crc32c.h"
#include "journal_files.h"
#include "journal_state.h"

namespace rejoin {

using namespace journal_internal;

Status Journal::Files::ListSegments(std::vector<std::uint64_t>* segments) {
  std::vector<std::string> names;
  if (int err = env_->ListDir(dir_, &names); err != 0) {
    return IoError("cannot list journal directory", dir_, err);
  }
  std::vector<std::string> temps;
  for (const std::string& name : names) {
    std::uint64_t number = 0;
    if (ParseSegmentName(name, &number)) {
      segments->push_back(number);
    } else if (name.starts_with(kSegmentPrefix) &&
               name.ends_with(kTempSuffix)) {
      temps.emplace_back(name);
    } else if (read_only_ && name.starts_with(kSegmentPrefix)) {
      seen_.other_files.emplace_back(name);  // e.g. kept aside by Salvage
    }
  }
  // A temporary segment is an unfinished roll or compaction: its content
  // also lives in the segments that are still in place.
  for (const std::string& t : temps) {
    if (read_only_) {
      seen_.other_files.push_back(t);
      continue;
    }
    std::string path = Path(t);
    if (int err = env_->RemoveFile(path); err != 0 && err != ENOENT) {
      return IoError("cannot remove", path, err);
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
  std::unique_ptr<JournalReadableFile> file;
  if (int err = env_->OpenReadableFile(path, &file); err != 0) {
    return IoError("cannot open", path, err);
  }
  char buf[kSegmentHeaderBytes + kRecordHeaderBytes];
  if (file->size() < sizeof(buf)) return Status::Ok();  // too short
  if (int err = file->ReadAt(0, sizeof(buf), buf); err != 0) {
    return IoError("cannot read", path, err);
  }
  const char* rec = buf + kSegmentHeaderBytes;
  // A snapshot marker has an empty body, so its header is the whole record
  // and its checksum can be verified from these bytes alone.
  *yes = std::memcmp(buf, kMagic, sizeof(kMagic)) == 0 &&
         DecodeFixed32(buf + 8) >= 1 &&
         DecodeFixed32(buf + 8) <= kFormatVersion &&
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

void Journal::Files::CutTail(const std::string& name, std::size_t offset,
                             std::size_t size, std::string reason, Journal& j) {
  ReplayReport& r = j.report_;
  r.truncated_bytes += size - offset;
  r.truncated_segment = name;
  r.truncated_offset = offset;
  r.truncated_reason = std::move(reason);
  if (!read_only_) pending_cut_ = PendingCut{name, offset};
}

Status Journal::Files::ApplyCut() {
  if (!pending_cut_) return Status::Ok();
  const PendingCut cut = *pending_cut_;
  pending_cut_.reset();
  std::string path = Path(cut.name);
  if (cut.offset == 0) {
    // Nothing of the segment is usable, not even its header.
    if (int err = env_->RemoveFile(path); err != 0) {
      return IoError("cannot remove", path, err);
    }
    return Status::Ok();
  }
  if (int err = segment_file_->Truncate(cut.offset); err != 0) {
    return IoError("cannot truncate torn tail of", path, err);
  }
  if (sync_) {
    if (int err = segment_file_->Sync(); err != 0) {
      return IoError("cannot sync", path, err);
    }
  }
  return Status::Ok();
}

Status Journal::Files::ReplaySegment(std::uint64_t number, bool last,
                                     Journal& j, ReplayContext* ctx) {
  const std::string name = SegmentName(number);
  const std::string path = Path(name);
  std::unique_ptr<JournalReadableFile> file;
  if (int err = env_->OpenReadableFile(path, &file); err != 0) {
    return IoError("cannot open", path, err);
  }
  // The last segment is appended to after replay, and a torn tail is cut
  // through the same descriptor.
  std::unique_ptr<JournalWritableFile> writer;
  if (last && !read_only_) {
    if (int err = env_->OpenAppendableFile(path, &writer); err != 0) {
      return IoError("cannot open", path, err);
    }
    // What a process that crashed appended after its last sync may be in
    // the OS cache only: readable now, gone at the next power loss. It is
    // made durable before it is read, so nothing this process does rests on
    // a record a power loss could still take back (a RESPONSE replayed
    // from it, an operation answered from it). Older segments ended with a
    // synced commit before the next one was started.
    if (sync_) {
      if (int err = writer->Sync(); err != 0) {
        return IoError("cannot sync", path, err);
      }
    }
  }
  auto size = static_cast<std::size_t>(file->size());
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
  SegmentReader reader(*file);
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
    CutTail(name, 0, size,
            size == 0 ? "empty segment"
            : zero    ? "zero-filled segment"
                      : "incomplete segment header",
            j);
    return Status::Ok();
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
    CutTail(name, offset, size, std::move(torn), j);
    size = offset;
  }
  ++j.report_.segments;

  if (last) {
    segment_file_ = std::move(writer);
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
  // A segment renamed into place whose directory entry was never synced (a
  // compaction or a roll that crashed between its rename and the directory
  // sync) is listed now and gone at the next power loss, with everything
  // this process would append to it. The directory is made durable before
  // anything rests on what it lists.
  if (sync_ && !read_only_) {
    if (Status s = SyncDir(dir_); !s.ok()) return s;
  }

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

  // The segments before the snapshot go, and a torn tail is cut, only now
  // that replay succeeded: an open that fails changes nothing (a damaged
  // snapshot leaves the older segments for salvage).
  for (std::uint64_t number : seen_.superseded) {
    std::string path = Path(SegmentName(number));
    if (int err = env_->RemoveFile(path); err != 0 && err != ENOENT) {
      return IoError("cannot remove superseded segment", path, err);
    }
  }
  if (Status s = ApplyCut(); !s.ok()) return s;

  if (segment_file_ == nullptr) {
    // No segment survived (new journal, or a torn first segment removed).
    std::size_t bytes = 0;
    bool renamed = false;
    Status s = CreateSegment(
        highest_number_ + 1, sync_,
        [](JournalWritableFile&, std::size_t*) { return 0; }, &segment_file_,
        &bytes, &renamed);
    if (!s.ok()) return s;
    segment_number_ = highest_number_;
    segment_size_ = bytes;
  }
  return Status::Ok();
}

}  // namespace rejoin
