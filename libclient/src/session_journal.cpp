#include "session_journal.h"

#include <utility>

#include "log.h"

namespace rejoin {

Result<std::shared_ptr<SharedJournal>> SharedJournal::Open(
    const std::string& dir, Durability durability, const std::string& name) {
  if (durability != Durability::kMemory && dir.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "a shared journal needs a directory unless durability is "
                  "memory");
  }
  JournalOptions jo;
  jo.dir = dir;
  jo.durability = durability;
  jo.role = JournalRole::kClient;
  jo.owner_id = name;
  auto journal = Journal::Open(std::move(jo));
  if (!journal.ok()) return journal.status();
  if (const ReplayReport& r = (*journal)->report(); r.truncated_bytes > 0) {
    client_internal::Log().warn(
        "journal in {}: cut a torn tail of {} bytes off {} at offset {} ({})",
        dir, r.truncated_bytes, r.truncated_segment, r.truncated_offset,
        r.truncated_reason);
  }
  auto impl = std::make_unique<Impl>();
  impl->journal = std::move(journal).value();
  return std::shared_ptr<SharedJournal>(new SharedJournal(std::move(impl)));
}

SharedJournal::SharedJournal(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

SharedJournal::~SharedJournal() = default;

std::uint64_t SharedJournal::commits() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->commits;
}

std::uint64_t SharedJournal::committed_records() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->committed_records;
}

namespace client_internal {

Result<std::unique_ptr<SessionJournal>> SessionJournal::Attach(
    std::shared_ptr<SharedJournal> shared, const SessionId& session) {
  {
    std::lock_guard lock(shared->impl_->mutex);
    if (!shared->impl_->attached.insert(session).second) {
      return Status(ErrorCode::kJournalLocked,
                    "session " + session +
                        " already has a client on this shared journal");
    }
  }
  return std::unique_ptr<SessionJournal>(
      new SessionJournal(std::move(shared), session));
}

SessionJournal::SessionJournal(std::shared_ptr<SharedJournal> shared,
                               SessionId session)
    : shared_(std::move(shared)), session_(std::move(session)) {}

SessionJournal::~SessionJournal() {
  std::lock_guard lock(impl().mutex);
  impl().attached.erase(session_);
}

Status SessionJournal::AppendOp(Seq seq, JournalOp op) {
  std::lock_guard lock(impl().mutex);
  Status s = impl().journal->AppendOp(session_, seq, std::move(op));
  if (s.ok()) last_appended_ = ++impl().appended;
  return s;
}

Status SessionJournal::AppendRelease(Seq below, const std::vector<Seq>& seqs) {
  std::lock_guard lock(impl().mutex);
  Status s = impl().journal->AppendRelease(session_, below, seqs);
  if (s.ok()) last_appended_ = ++impl().appended;
  return s;
}

Status SessionJournal::Commit() {
  if (!dirty()) return Status::Ok();
  SharedJournal::Impl& j = impl();
  std::unique_lock lock(j.mutex);
  j.written.wait(lock, [&] {
    return j.durable >= last_appended_ || !j.failed.ok() || !j.writing;
  });
  if (j.durable >= last_appended_) {
    known_durable_ = j.durable;
    return Status::Ok();
  }
  if (!j.failed.ok()) return j.failed;
  j.writing = true;
  const std::uint64_t upto = j.appended;
  j.journal->DetachPending(j.detached);
  lock.unlock();
  Status s = j.journal->WriteDetached(j.detached);
  lock.lock();
  j.writing = false;
  if (s.ok()) {
    ++j.commits;
    j.committed_records += upto - j.durable;
    j.durable = upto;
    known_durable_ = upto;
  } else {
    j.failed = s;
  }
  j.written.notify_all();
  return s;
}

Status SessionJournal::CompactIfNeeded() {
  SharedJournal::Impl& j = impl();
  std::lock_guard lock(j.mutex);
  // Not while a commit writes (it would wait for the write); a later turn
  // of some session finds the journal free.
  if (j.writing || !j.failed.ok() || !j.journal->NeedsCompaction()) {
    return j.failed;
  }
  // Compact commits first: everything appended is durable afterwards.
  const std::uint64_t upto = j.appended;
  if (Status s = j.journal->Compact(); !s.ok()) return s;
  j.durable = upto;
  return Status::Ok();
}

const JournalSession* SessionJournal::session() const {
  if (session_records_ != nullptr) return session_records_;
  std::lock_guard lock(impl().mutex);
  const auto& sessions = impl().journal->state().sessions;
  // Elements of an unordered_map stay where they are when others are added.
  if (auto it = sessions.find(session_); it != sessions.end()) {
    session_records_ = &it->second;
  }
  return session_records_;
}

}  // namespace client_internal
}  // namespace rejoin
