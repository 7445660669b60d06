// Reading a journal without changing it (Journal::Inspect) and the
// operator's way out of a corrupt one (Journal::Salvage); JOURNAL.md §7.
#include <cerrno>
#include <limits>
#include <string>
#include <utility>

#include "journal_files.h"

namespace rejoin {

using namespace journal_internal;

Status Journal::Files::Salvage(const Journal& j, SalvageReport* out) {
  // 1. Keep every segment from the damaged one on under a new name. A hard
  //    link: the bytes stay reachable whatever happens next.
  //    When the damage is in the snapshot replay started at, the segments
  //    it superseded hold what the damaged part of it held: they are kept
  //    too.
  std::vector<std::uint64_t> replaced = seen_.superseded;
  for (std::uint64_t number : seen_.segments) replaced.push_back(number);
  const bool snapshot_damaged =
      !seen_.superseded.empty() && !seen_.segments.empty() &&
      SegmentName(seen_.segments.front()) == seen_.damaged_segment;
  bool from_damage = snapshot_damaged;
  for (std::uint64_t number : replaced) {
    const std::string name = SegmentName(number);
    if (name == seen_.damaged_segment) from_damage = true;
    if (!from_damage) continue;
    std::string aside = name + ".damaged";
    for (int n = 1; env_->FileExists(Path(aside)); ++n) {
      aside = name + ".damaged." + std::to_string(n);
    }
    if (int err = env_->LinkFile(Path(name), Path(aside)); err != 0) {
      return IoError("cannot keep aside", Path(name), err);
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
  std::unique_ptr<JournalWritableFile> file;
  std::uint64_t number = highest_number_ + 1;
  Status s = CreateSegment(number, /*sync=*/true, SnapshotFill(j), &file,
                           &bytes, &renamed);
  if (!s.ok()) return s;
  out->snapshot = SegmentName(number);
  // 3. The segments it supersedes, damaged ones included (their bytes are
  //    kept aside), go now rather than at the next open.
  for (std::uint64_t old : replaced) {
    std::string path = Path(SegmentName(old));
    if (int err = env_->RemoveFile(path); err != 0 && err != ENOENT) {
      return IoError("cannot remove superseded segment", path, err);
    }
    out->removed.push_back(SegmentName(old));
  }
  return SyncDir(dir_);
}

// ---------------------------------------------------------------------------
// Inspection and salvage.

namespace {

// A journal object for a read-only replay: role and owner are learned from
// the journal itself.
JournalOptions ReadOnlyOptions(const std::string& dir, JournalEnv* env) {
  JournalOptions o;
  o.dir = dir;
  o.env = env;
  o.durability = Durability::kProcess;
  return o;
}

Status NeedsDirectory(const std::string& dir, JournalEnv* env) {
  if (!env->IsDirectory(dir)) {
    return Status(ErrorCode::kNotFound, "no journal directory " + dir);
  }
  return Status::Ok();
}

JournalEnv* EnvOrDefault(JournalEnv* env) {
  return env != nullptr ? env : JournalEnv::Default();
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
    if (j->files_->env()->FileSize(dir + "/" + info.name, &info.bytes) != 0) {
      info.bytes = static_cast<std::uint64_t>(-1);  // vanished meanwhile
    }
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

Result<JournalInspection> Journal::Inspect(const std::string& dir,
                                           JournalEnv* env) {
  env = EnvOrDefault(env);
  if (Status s = NeedsDirectory(dir, env); !s.ok()) return s;
  std::unique_ptr<Journal> j(new Journal(ReadOnlyOptions(dir, env)));
  JournalInspection out;
  // Whether a live process holds LOCK; creates nothing.
  out.locked = env->LockHeld(dir + "/" + std::string(kLockName));
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
    const std::string& dir, std::function<JournalId()> new_journal_id,
    JournalEnv* env) {
  env = EnvOrDefault(env);
  if (Status s = NeedsDirectory(dir, env); !s.ok()) return s;
  // A journal that needs no salvage is refused before anything is touched
  // (not even LOCK created); the check is repeated under the lock.
  Result<JournalInspection> first = Inspect(dir, env);
  if (!first.ok()) return first.status();
  if (first->integrity != JournalIntegrity::kCorrupt && !first->locked) {
    return InvalidArgument("journal in " + dir +
                           " is not corrupt; it opens as it is, nothing to "
                           "salvage");
  }
  // The lock: nobody may write while the damage is moved aside.
  Files lock_holder(ReadOnlyOptions(dir, env), /*read_only=*/false);
  if (Status s = lock_holder.LockExisting(); !s.ok()) return s;

  std::unique_ptr<Journal> j(new Journal(ReadOnlyOptions(dir, env)));
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
  JournalOptions id_source = ReadOnlyOptions(dir, env);
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
