// The journal's environment: every file, directory, lock and random number
// the journal uses goes through an Env, so tests can substitute one that
// loses unsynced writes, tears the last write or fails with ENOSPC
// (JOURNAL.md §8). JournalEnv::Default() is the POSIX one used in
// production; it is stateless, thread-safe and never destroyed.
//
// Failure model: every call returns 0 or an errno value (EIO, ENOSPC,
// ENOENT, EWOULDBLOCK, ...); the journal turns them into Status messages
// that name the file. Nothing here throws. An implementation is used by one
// journal thread at a time per file, but several journals may share one Env.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rejoin {

// A file opened for appending. Writes go to the end of the file.
class JournalWritableFile {
 public:
  virtual ~JournalWritableFile() = default;
  // Writes all of `data` (resuming after partial writes and EINTR). After an
  // error a prefix of `data` may be in the file.
  [[nodiscard]] virtual int Append(std::string_view data) = 0;
  // Makes the file's data durable (fdatasync).
  [[nodiscard]] virtual int Sync() = 0;
  // Cuts the file to `size` bytes (a torn tail); not durable until Sync.
  [[nodiscard]] virtual int Truncate(std::uint64_t size) = 0;
};

// A file opened for reading at any offset. Its size is taken at open.
class JournalReadableFile {
 public:
  virtual ~JournalReadableFile() = default;
  std::uint64_t size() const { return size_; }
  // Reads exactly `n` bytes at `offset` into `out`; EIO if the file is
  // shorter than that.
  [[nodiscard]] virtual int ReadAt(std::uint64_t offset, std::size_t n,
                                   char* out) = 0;
  // The next stretch [*begin, *end) at or after `offset` that may hold
  // non-zero bytes; *begin == size() when only a hole is left. The default
  // says "everything may": sparse files are a POSIX optimisation.
  [[nodiscard]] virtual int NextData(std::uint64_t offset, std::uint64_t* begin,
                                     std::uint64_t* end) {
    *begin = offset;
    *end = size_;
    return 0;
  }

 protected:
  explicit JournalReadableFile(std::uint64_t size) : size_(size) {}

 private:
  std::uint64_t size_;
};

// An exclusive lock on a file, held until destroyed.
class JournalFileLock {
 public:
  virtual ~JournalFileLock() = default;
};

class JournalEnv {
 public:
  virtual ~JournalEnv() = default;

  // The POSIX environment: open/write/fdatasync/flock/rename/readdir and
  // std::random_device.
  static JournalEnv* Default();

  // Creates `path` (or truncates it) for appending.
  [[nodiscard]] virtual int NewWritableFile(
      const std::string& path, std::unique_ptr<JournalWritableFile>* out) = 0;
  // Opens an existing file for appending at its end.
  [[nodiscard]] virtual int OpenAppendableFile(
      const std::string& path, std::unique_ptr<JournalWritableFile>* out) = 0;
  [[nodiscard]] virtual int OpenReadableFile(
      const std::string& path, std::unique_ptr<JournalReadableFile>* out) = 0;
  [[nodiscard]] virtual int FileSize(const std::string& path,
                                     std::uint64_t* size) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // Replaces `to` atomically; durable once the directory is synced.
  [[nodiscard]] virtual int RenameFile(const std::string& from,
                                       const std::string& to) = 0;
  // ENOENT when there is no such file.
  [[nodiscard]] virtual int RemoveFile(const std::string& path) = 0;
  // A second name for the same file (a hard link).
  [[nodiscard]] virtual int LinkFile(const std::string& from,
                                     const std::string& to) = 0;
  // Names in `dir`, without "." and "..", in no particular order.
  [[nodiscard]] virtual int ListDir(const std::string& dir,
                                    std::vector<std::string>* names) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;
  // Creates `dir` with missing parents; *created tells whether it was new.
  [[nodiscard]] virtual int CreateDirs(const std::string& dir,
                                       bool* created) = 0;
  // Makes the directory's entries (creates, renames, removals) durable.
  [[nodiscard]] virtual int SyncDir(const std::string& dir) = 0;
  // Opens (creating if needed) `path` and takes an exclusive lock on it
  // without waiting: EWOULDBLOCK when anyone else holds it, including
  // another lock object of this process.
  [[nodiscard]] virtual int LockFile(const std::string& path,
                                     std::unique_ptr<JournalFileLock>* out) = 0;
  // Whether someone holds the lock on an existing `path`; creates nothing.
  virtual bool LockHeld(const std::string& path) = 0;
  // A random 64-bit value (a new journal id).
  [[nodiscard]] virtual int Random64(std::uint64_t* out) = 0;
};

}  // namespace rejoin
