// The POSIX JournalEnv: plain file descriptors, fdatasync, flock, rename and
// readdir. Every call retries EINTR and reports errno; nothing is buffered
// here (the journal buffers a whole commit and hands it over in one Append).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <filesystem>
#include <random>
#include <system_error>
#include <utility>

#include "rejoin/proto/journal_env.h"

namespace rejoin {
namespace {

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

UniqueFd OpenFd(const std::string& path, int flags, mode_t mode = 0644) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return UniqueFd(fd);
}

int FlockNoWait(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

class PosixWritableFile final : public JournalWritableFile {
 public:
  explicit PosixWritableFile(UniqueFd fd) : fd_(std::move(fd)) {}

  int Append(std::string_view data) override {
    const char* p = data.data();
    std::size_t n = data.size();
    while (n > 0) {
      ssize_t w = ::write(fd_.get(), p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return 0;
  }

  int Sync() override { return ::fdatasync(fd_.get()) == 0 ? 0 : errno; }

  int Truncate(std::uint64_t size) override {
    return ::ftruncate(fd_.get(), static_cast<off_t>(size)) == 0 ? 0 : errno;
  }

 private:
  UniqueFd fd_;
};

class PosixReadableFile final : public JournalReadableFile {
 public:
  PosixReadableFile(UniqueFd fd, std::uint64_t size)
      : JournalReadableFile(size), fd_(std::move(fd)) {}

  int ReadAt(std::uint64_t offset, std::size_t n, char* out) override {
    std::size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_.get(), out + done, n - done,
                          static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (r == 0) return EIO;  // file shrank under us: nobody else may write
      done += static_cast<std::size_t>(r);
    }
    return 0;
  }

  // SEEK_DATA/SEEK_HOLE, so the holes of a sparse file are never read. A
  // file system without them reports everything as data.
  int NextData(std::uint64_t offset, std::uint64_t* begin,
               std::uint64_t* end) override {
    *begin = offset;
    *end = size();
    off_t data = ::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      *begin = size();  // only a hole is left
      return 0;
    }
    if (data >= 0) {
      *begin =
          std::min(size(), std::max(offset, static_cast<std::uint64_t>(data)));
      if (*begin >= size()) return 0;
    }
    off_t hole = ::lseek(fd_.get(), static_cast<off_t>(*begin), SEEK_HOLE);
    if (hole > static_cast<off_t>(*begin)) {
      *end = std::min(size(), static_cast<std::uint64_t>(hole));
    }
    return 0;
  }

 private:
  UniqueFd fd_;
};

class PosixFileLock final : public JournalFileLock {
 public:
  explicit PosixFileLock(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // the flock goes with the open file description
};

class PosixEnv final : public JournalEnv {
 public:
  int NewWritableFile(const std::string& path,
                      std::unique_ptr<JournalWritableFile>* out) override {
    UniqueFd fd = OpenFd(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
    if (!fd.valid()) return errno;
    *out = std::make_unique<PosixWritableFile>(std::move(fd));
    return 0;
  }

  int OpenAppendableFile(const std::string& path,
                         std::unique_ptr<JournalWritableFile>* out) override {
    UniqueFd fd = OpenFd(path, O_WRONLY | O_APPEND);
    if (!fd.valid()) return errno;
    *out = std::make_unique<PosixWritableFile>(std::move(fd));
    return 0;
  }

  int OpenReadableFile(const std::string& path,
                       std::unique_ptr<JournalReadableFile>* out) override {
    UniqueFd fd = OpenFd(path, O_RDONLY);
    if (!fd.valid()) return errno;
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errno;
    *out = std::make_unique<PosixReadableFile>(
        std::move(fd), static_cast<std::uint64_t>(st.st_size));
    return 0;
  }

  int FileSize(const std::string& path, std::uint64_t* size) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return errno;
    *size = static_cast<std::uint64_t>(st.st_size);
    return 0;
  }

  bool FileExists(const std::string& path) override {
    return ::access(path.c_str(), F_OK) == 0;
  }

  int RenameFile(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }

  int RemoveFile(const std::string& path) override {
    return ::unlink(path.c_str()) == 0 ? 0 : errno;
  }

  int LinkFile(const std::string& from, const std::string& to) override {
    return ::link(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }

  int ListDir(const std::string& dir,
              std::vector<std::string>* names) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (name != "." && name != "..") names->emplace_back(name);
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    return err;
  }

  bool IsDirectory(const std::string& path) override {
    std::error_code ec;
    return std::filesystem::is_directory(path, ec);
  }

  int CreateDirs(const std::string& dir, bool* created) override {
    std::error_code ec;
    *created = false;
    if (std::filesystem::is_directory(dir, ec)) return 0;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ec.value() != 0 ? ec.value() : EIO;
    *created = true;
    return 0;
  }

  int SyncDir(const std::string& dir) override {
    UniqueFd fd = OpenFd(dir, O_RDONLY | O_DIRECTORY);
    if (!fd.valid()) return errno;
    return ::fsync(fd.get()) == 0 ? 0 : errno;
  }

  int LockFile(const std::string& path,
               std::unique_ptr<JournalFileLock>* out) override {
    UniqueFd fd = OpenFd(path, O_RDWR | O_CREAT);
    if (!fd.valid()) return errno;
    if (int err = FlockNoWait(fd.get(), LOCK_EX); err != 0) return err;
    *out = std::make_unique<PosixFileLock>(std::move(fd));
    return 0;
  }

  // Probes with a shared flock on a read-only descriptor, released at once.
  bool LockHeld(const std::string& path) override {
    UniqueFd fd = OpenFd(path, O_RDONLY);
    if (!fd.valid()) return false;
    return FlockNoWait(fd.get(), LOCK_SH) == EWOULDBLOCK;
  }

  // std::random_device reports an unusable entropy source by throwing; this
  // is the one place that is translated.
  int Random64(std::uint64_t* out) override {
    try {
      std::random_device rd;
      *out = (static_cast<std::uint64_t>(rd()) << 32) ^
             static_cast<std::uint64_t>(rd());
      return 0;
    } catch (const std::exception&) {
      return EIO;
    }
  }
};

}  // namespace

JournalEnv* JournalEnv::Default() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: used at exit
  return env;
}

}  // namespace rejoin
