// An in-memory JournalEnv for power-loss tests: it keeps, beside what each
// file holds now, what a power loss would leave of it, and can fail every
// change from a chosen point on (the machine stops there) or run out of
// space mid-write.
//
// The durability model is POSIX's, taken strictly: a file's bytes survive a
// power loss only up to its last Sync, and a directory entry (a create,
// rename, link or removal) only once its directory was synced; an entry
// that is lost takes the file with it. Directories themselves are durable
// once created. Thread-safe; the journal's files and locks must be closed
// (every Journal destroyed) before PowerLoss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "rejoin/proto/journal_env.h"

namespace rejoin::testing {

enum class PowerLossMode : std::uint8_t {
  // Every byte and every directory change not yet synced is gone.
  kDropUnsynced = 0,
  // As kDropUnsynced, except that the file written last keeps the first
  // `torn_bytes` of its unsynced bytes: its last write is torn there.
  kTearLastWrite = 1,
  // Unsynced bytes keep their place but read as zeros (the size reached
  // the disk, the data did not).
  kZeroFillUnsynced = 2,
};

class FaultEnv final : public JournalEnv {
 public:
  // `seed` drives Random64 (journal ids).
  explicit FaultEnv(std::uint64_t seed = 1);
  ~FaultEnv() override;

  // Fault injection. Every change (create, append, sync, truncate, rename,
  // remove, link, directory sync, creating LOCK) counts as one mutation.
  // From mutation number `n` on (counting from 0 at construction), every
  // change fails with `err` and has no effect: n = mutations() fails the
  // next one. With EIO this is the machine stopping at that point.
  void FailFrom(std::uint64_t n, int err);
  // From now on `bytes` more bytes may be appended; the append that would
  // pass the limit writes what fits and fails with ENOSPC, as do all later
  // appends.
  void LimitSpace(std::size_t bytes);
  // Syncs of files (not directories) fail with `err` from now on.
  void FailFileSyncs(int err);
  void ClearFaults();
  std::uint64_t mutations() const;

  // Power loss and restart: bytes that were not durable are dropped as
  // `mode` says, and so are directory changes that were not synced unless
  // `keep_unsynced_entries` (a file system that orders its metadata
  // journal, and so may keep a rename whose data it lost). The faults are
  // cleared. Aborts if a lock is still held (a Journal still open).
  void PowerLoss(PowerLossMode mode, std::size_t torn_bytes = 0,
                 bool keep_unsynced_entries = false);

  // For assertions: the files under `dir` (names), a file's bytes now, and
  // the number of files in the whole env.
  std::vector<std::string> FileNames(const std::string& dir) const;
  std::string Contents(const std::string& path) const;
  std::size_t FileCount() const;

  // JournalEnv.
  int NewWritableFile(const std::string& path,
                      std::unique_ptr<JournalWritableFile>* out) override;
  int OpenAppendableFile(const std::string& path,
                         std::unique_ptr<JournalWritableFile>* out) override;
  int OpenReadableFile(const std::string& path,
                       std::unique_ptr<JournalReadableFile>* out) override;
  int FileSize(const std::string& path, std::uint64_t* size) override;
  bool FileExists(const std::string& path) override;
  int RenameFile(const std::string& from, const std::string& to) override;
  int RemoveFile(const std::string& path) override;
  int LinkFile(const std::string& from, const std::string& to) override;
  int ListDir(const std::string& dir, std::vector<std::string>* names) override;
  bool IsDirectory(const std::string& path) override;
  int CreateDirs(const std::string& dir, bool* created) override;
  int SyncDir(const std::string& dir) override;
  int LockFile(const std::string& path,
               std::unique_ptr<JournalFileLock>* out) override;
  bool LockHeld(const std::string& path) override;
  int Random64(std::uint64_t* out) override;

  // A file's contents: what it holds now and what survives a power loss.
  struct Inode {
    std::string data;
    std::string durable;
    // A truncation cut into `durable`, which is then no prefix of `data`;
    // otherwise a sync only appends what was written since the last one.
    bool diverged = false;
  };

 private:
  class Writable;
  class Readable;
  class Lock;
  friend class Writable;
  friend class Lock;

  // Counts a mutation; returns the injected error, or 0 to go ahead.
  int Mutate();
  int Append(const std::shared_ptr<Inode>& inode, std::string_view data);
  int Sync(const std::shared_ptr<Inode>& inode);
  int Truncate(const std::shared_ptr<Inode>& inode, std::uint64_t size);
  void Unlock(const std::string& path);
  std::shared_ptr<Inode> Find(const std::string& path) const;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Inode>> entries_;
  std::map<std::string, std::shared_ptr<Inode>> durable_entries_;
  std::set<std::string> dirs_;
  std::set<std::string> locked_;
  std::shared_ptr<Inode> last_written_;
  std::uint64_t mutations_ = 0;
  std::uint64_t fail_from_ = UINT64_MAX;
  int fail_err_ = 0;
  bool space_limited_ = false;
  std::size_t space_left_ = 0;
  int sync_err_ = 0;
  std::mt19937_64 random_;
};

}  // namespace rejoin::testing
