// Writing the journal (JOURNAL.md §5): the directory and its lock, segment
// creation (temporary name, sync, rename), the group-commit write path,
// rolling to a new segment, and compaction's snapshot segment.
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <utility>

#include "journal_files.h"

namespace rejoin {

using namespace journal_internal;

Status Journal::Files::CreateDir() {
  namespace fs = std::filesystem;
  bool created = false;
  if (int err = env_->CreateDirs(dir_, &created); err != 0) {
    return IoError("cannot create journal directory", dir_, err);
  }
  if (created && sync_) {
    // The new directory's entry must survive power loss like its contents.
    fs::path parent = fs::path(dir_).lexically_normal().parent_path();
    return SyncDir(parent.empty() ? std::string(".") : parent.string());
  }
  return Status::Ok();
}

Status Journal::Files::Lock() {
  std::string path = Path(kLockName);
  if (int err = env_->LockFile(path, &lock_); err != 0) {
    if (err == EWOULDBLOCK) {
      return Status(ErrorCode::kJournalLocked,
                    "journal in " + dir_ +
                        " is already open (its LOCK is held by another "
                        "process or Journal)");
    }
    return IoError("cannot lock", path, err);
  }
  return Status::Ok();
}

Status Journal::Files::CreateSegment(std::uint64_t number, bool sync,
                                     const Fill& fill,
                                     std::unique_ptr<JournalWritableFile>* out,
                                     std::size_t* bytes, bool* renamed) {
  *renamed = false;
  std::string final_path = Path(SegmentName(number));
  std::string temp_path = final_path + std::string(kTempSuffix);
  std::unique_ptr<JournalWritableFile> file;
  if (int err = env_->NewWritableFile(temp_path, &file); err != 0) {
    return IoError("cannot create", temp_path, err);
  }

  auto fail = [&](std::string_view what, int err) {
    (void)env_->RemoveFile(temp_path);  // replay removes it otherwise
    return IoError(what, temp_path, err);
  };
  std::string header = SegmentHeader();
  if (int err = file->Append(header); err != 0) {
    return fail("cannot write", err);
  }
  std::size_t filled = 0;
  if (int err = fill(*file, &filled); err != 0) {
    return fail("cannot write", err);
  }
  if (sync) {
    if (int err = file->Sync(); err != 0) return fail("cannot sync", err);
  }
  if (int err = env_->RenameFile(temp_path, final_path); err != 0) {
    return fail("cannot rename", err);
  }
  *renamed = true;
  highest_number_ = std::max(highest_number_, number);
  if (sync) {
    if (Status s = SyncDir(dir_); !s.ok()) return s;
  }
  *out = std::move(file);
  *bytes = header.size() + filled;
  return Status::Ok();
}

Status Journal::Files::SyncDir(const std::string& path) {
  if (int err = env_->SyncDir(path); err != 0) {
    return IoError("cannot sync directory", path, err);
  }
  return Status::Ok();
}

Status Journal::Files::Roll() {
  std::unique_ptr<JournalWritableFile> file;
  std::size_t bytes = 0;
  bool renamed = false;
  std::uint64_t number = highest_number_ + 1;
  Status s = CreateSegment(
      number, sync_, [](JournalWritableFile&, std::size_t*) { return 0; },
      &file, &bytes, &renamed);
  if (!s.ok()) return s;
  older_segments_.push_back(segment_number_);
  older_bytes_ += segment_size_;
  segment_file_ = std::move(file);
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
    if (int err = segment_file_->Append(records); err != 0) {
      s = IoError("cannot write", path(), err);
    }
  }
  // One fdatasync per commit, however many records it carries: this is the
  // group commit of kSync.
  if (s.ok() && sync_) {
    if (int err = segment_file_->Sync(); err != 0) {
      s = IoError("cannot sync", path(), err);
    }
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
Journal::Files::Fill Journal::Files::SnapshotFill(const Journal& j) {
  return [&j](JournalWritableFile& file, std::size_t* written) -> int {
    const JournalOptions& o = j.options_;
    std::string chunk;
    chunk.reserve(kSnapshotChunkBytes + kFixedFieldBytes);
    auto flush = [&]() -> int {
      // A snapshot larger than any segment may be would not be read back.
      if (*written + chunk.size() >
          kMaxSegmentFileBytes - kSegmentHeaderBytes) {
        return EFBIG;
      }
      int err = file.Append(chunk);
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
  Fill fill = SnapshotFill(j);
  std::unique_ptr<JournalWritableFile> file;
  std::size_t bytes = 0;
  bool renamed = false;
  std::uint64_t number = highest_number_ + 1;
  // Always synced, whatever the level: once the old segments are deleted the
  // snapshot is the only copy, and a snapshot lost to power failure would
  // cost the whole journal rather than its tail.
  Status s =
      CreateSegment(number, /*sync=*/true, fill, &file, &bytes, &renamed);
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
    (void)env_->RemoveFile(Path(SegmentName(old)));
  }
  older_segments_.clear();
  older_bytes_ = 0;
  segment_file_ = std::move(file);
  segment_number_ = number;
  segment_size_ = bytes;
  return Status::Ok();
}

}  // namespace rejoin
