// The journal's public face: options, Open, the append calls and Commit.
// The rest lives beside it: journal_format (records), journal_state (the
// state transitions), journal_segments (writing and compaction),
// journal_replay and journal_damage (open), journal_salvage (Inspect and
// Salvage), journal_env_posix (files). The on-disk format and its
// crash-safety argument are in libproto/JOURNAL.md; the code must stay in
// step with it.
#include "rejoin/proto/journal.h"

#include <string>
#include <utility>

#include "journal_files.h"
#include "journal_state.h"

namespace rejoin {

using namespace journal_internal;

namespace {

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

}  // namespace

Result<JournalId> NewJournalId(const JournalOptions& o) {
  if (o.new_journal_id) return o.new_journal_id();
  JournalEnv* env = o.env != nullptr ? o.env : JournalEnv::Default();
  JournalId id = 0;
  while (id == 0) {
    if (int err = env->Random64(&id); err != 0) {
      return Status(ErrorCode::kIoError,
                    "no entropy for a journal id: " + ErrnoText(err));
    }
  }
  return id;
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

}  // namespace rejoin
