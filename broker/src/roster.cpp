// The roster file: strict text codec and durable replacement (roster.h).
// Parsing is strict because a roster that silently lost a line would let a
// broker end its grace period while a listed server still holds work; any
// doubt makes the file corrupt, which costs only the full grace period.
#include "roster.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <utility>

namespace rejoin::broker_internal {
namespace {

constexpr std::string_view kMagic = "rejoin-roster 1";
// Far above any real roster (ids are at most 128 bytes); a bigger file is
// not a roster.
constexpr std::size_t kMaxRosterBytes = 16 * 1024 * 1024;

Status Corrupt(const std::string& why) {
  return Status(ErrorCode::kCorrupt, "roster: " + why);
}

Status IoError(std::string_view what, const std::string& path, int err) {
  return Status(ErrorCode::kIoError,
                std::string(what) + " " + path + ": " + std::strerror(err));
}

int Open(const std::string& path, int flags, mode_t mode = 0644) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Closes the descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

std::string HexEpoch(Epoch e) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kDigits[e & 0xf];
    e >>= 4;
  }
  return out;
}

bool ParseHexEpoch(std::string_view text, Epoch& out) {
  if (text.size() != 16) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

bool ParseCount(std::string_view text, std::size_t& out) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// "key value" -> value, when the line starts with "key ".
bool Field(std::string_view line, std::string_view key,
           std::string_view& value) {
  if (line.size() <= key.size() || line.substr(0, key.size()) != key ||
      line[key.size()] != ' ') {
    return false;
  }
  value = line.substr(key.size() + 1);
  return true;
}

std::string DirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

std::string EncodeRoster(const RosterContents& contents) {
  std::string out;
  out += kMagic;
  out += '\n';
  out += contents.complete ? "state complete\n" : "state partial\n";
  for (Epoch e : contents.epochs) out += "epoch " + HexEpoch(e) + "\n";
  for (const std::string& id : contents.servers) out += "server " + id + "\n";
  out += "end " + std::to_string(contents.servers.size()) + "\n";
  return out;
}

Result<RosterContents> DecodeRoster(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return Corrupt("empty, or the last line is not terminated");
  }
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  if (lines.size() < 3 || lines[0] != kMagic) {
    return Corrupt("not a version 1 roster");
  }
  RosterContents out;
  if (lines[1] == "state complete") {
    out.complete = true;
  } else if (lines[1] != "state partial") {
    return Corrupt("line 2 is not a state");
  }
  std::size_t i = 2;
  for (; i + 1 < lines.size(); ++i) {
    std::string_view value;
    if (!Field(lines[i], "epoch", value)) break;
    Epoch e = 0;
    if (!ParseHexEpoch(value, e) || out.epochs.size() == kMaxRosterEpochs) {
      return Corrupt("bad epoch on line " + std::to_string(i + 1));
    }
    out.epochs.push_back(e);
  }
  for (; i + 1 < lines.size(); ++i) {
    std::string_view id;
    if (!Field(lines[i], "server", id) || !IsValidId(id)) {
      return Corrupt("bad line " + std::to_string(i + 1));
    }
    if (!out.servers.emplace(id).second) {
      return Corrupt("server listed twice on line " + std::to_string(i + 1));
    }
    // The writer lists them sorted; a file in another order was not written
    // by a broker.
    if (*out.servers.rbegin() != id) {
      return Corrupt("server out of order on line " + std::to_string(i + 1));
    }
  }
  std::string_view count_text;
  std::size_t count = 0;
  if (!Field(lines[i], "end", count_text) || !ParseCount(count_text, count) ||
      count != out.servers.size()) {
    return Corrupt("missing or wrong end line");
  }
  return out;
}

Result<RosterContents> ReadRoster(const std::string& path) {
  const int fd = Open(path, O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Result<RosterContents>(ErrorCode::kNotFound, path + ": no roster");
    }
    return Result<RosterContents>(IoError("cannot open", path, errno));
  }
  FdCloser closer{fd};
  std::string bytes;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Result<RosterContents>(IoError("cannot read", path, errno));
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
    if (bytes.size() > kMaxRosterBytes) return Corrupt("file too large");
  }
  return DecodeRoster(bytes);
}

Status WriteRoster(const std::string& path, const RosterContents& contents) {
  const std::string temp = path + ".tmp";
  const std::string bytes = EncodeRoster(contents);
  int fd = Open(temp, O_WRONLY | O_CREAT | O_TRUNC);
  if (fd < 0) return IoError("cannot create", temp, errno);
  auto fail = [&](std::string_view what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    return IoError(what, temp, err);
  };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) return fail("cannot sync", errno);
  if (::close(fd) != 0) {
    fd = -1;
    return fail("cannot close", errno);
  }
  fd = -1;
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail("cannot rename", errno);
  }
  // The rename is durable only once the directory is.
  const std::string dir = DirectoryOf(path);
  const int dir_fd = Open(dir, O_RDONLY | O_DIRECTORY);
  if (dir_fd < 0) return IoError("cannot open directory", dir, errno);
  FdCloser closer{dir_fd};
  if (::fsync(dir_fd) != 0) return IoError("cannot sync directory", dir, errno);
  return Status::Ok();
}

RosterLock::~RosterLock() {
  if (fd_ >= 0) ::close(fd_);
}

RosterLock::RosterLock(RosterLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

RosterLock& RosterLock::operator=(RosterLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Result<RosterLock> RosterLock::Acquire(const std::string& roster_path) {
  const std::string path = roster_path + ".lock";
  const int fd = Open(path, O_RDWR | O_CREAT);
  if (fd < 0) return Result<RosterLock>(IoError("cannot open", path, errno));
  RosterLock lock(fd);
  int r;
  do {
    r = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    if (errno == EWOULDBLOCK) {
      return Result<RosterLock>(
          ErrorCode::kIoError,
          roster_path + " is kept by another running broker (" + path + ")");
    }
    return Result<RosterLock>(IoError("cannot lock", path, errno));
  }
  return lock;
}

}  // namespace rejoin::broker_internal
