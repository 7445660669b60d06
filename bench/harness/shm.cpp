// Shared-memory records: mapping, counters and the completion log.
#include "shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace rejoin::bench {

std::int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string MakePayload(std::uint64_t tag, std::size_t size) {
  std::string p(size < 8 ? 8 : size, 'x');
  std::memcpy(p.data(), &tag, sizeof tag);
  return p;
}

std::uint64_t ReadTag(const void* data, std::size_t size) {
  if (size < 8) return kWarmupTag;
  std::uint64_t tag = 0;
  std::memcpy(&tag, data, sizeof tag);
  return tag;
}

MappedFile::MappedFile(const std::string& path, std::size_t bytes,
                       bool create) {
  int fd = ::open(path.c_str(), create ? (O_RDWR | O_CREAT | O_TRUNC) : O_RDWR,
                  0644);
  if (fd < 0) {
    error_ = path + ": " + std::strerror(errno);
    return;
  }
  if (create && ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    error_ = path + ": ftruncate: " + std::strerror(errno);
    ::close(fd);
    return;
  }
  if (!create) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < bytes) {
      error_ = path + ": too short";
      ::close(fd);
      return;
    }
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    error_ = path + ": mmap: " + std::strerror(errno);
    return;
  }
  data_ = p;
  size_ = bytes;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      error_(std::move(other.error_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    error_ = std::move(other.error_);
  }
  return *this;
}

Control::Control(const std::string& path, bool create)
    : file_(path, sizeof(ControlBlock), create) {}

namespace {

// The counts, padded to 8 bytes, then the times.
std::size_t CountBytes(std::uint64_t ops) { return (ops * 4 + 7) / 8 * 8; }

bool HasTimes(const std::string& path, std::uint64_t ops) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 &&
         static_cast<std::uint64_t>(st.st_size) >= CountBytes(ops) + ops * 8;
}

}  // namespace

ExecCounters::ExecCounters(const std::string& path, std::uint64_t clients,
                           std::uint64_t capacity, bool create, bool with_times)
    : clients_(clients), capacity_(capacity) {
  const std::uint64_t ops = clients * capacity;
  if (!create) with_times = HasTimes(path, ops);
  file_ = MappedFile(
      path,
      static_cast<std::size_t>(CountBytes(ops) + (with_times ? ops * 8 : 0)),
      create);
  if (!file_.ok()) return;
  auto* base = static_cast<char*>(file_.data());
  counts_ = reinterpret_cast<std::uint32_t*>(base);
  if (with_times) {
    times_ = reinterpret_cast<std::int64_t*>(base + CountBytes(ops));
  }
}

std::int64_t ExecCounters::Index(std::uint64_t tag) const {
  if (tag == kWarmupTag || counts_ == nullptr) return -1;
  const std::uint64_t client = TagClient(tag);
  const std::uint64_t op = TagOp(tag);
  if (client >= clients_ || op >= capacity_) return -1;
  return static_cast<std::int64_t>(client * capacity_ + op);
}

std::uint32_t ExecCounters::Execute(std::uint64_t tag) const {
  const std::int64_t i = Index(tag);
  if (i < 0) return 0;
  const std::uint32_t before = Add(counts_[i], std::uint32_t{1});
  if (before == 0 && times_ != nullptr) Store(times_[i], NowNs());
  return before;
}

std::uint32_t ExecCounters::Count(std::uint64_t client,
                                  std::uint64_t op) const {
  const std::int64_t i = Index(PackTag(client, op));
  return i < 0 ? 0 : Load(counts_[i]);
}

std::int64_t ExecCounters::FirstRunNs(std::uint64_t client,
                                      std::uint64_t op) const {
  const std::int64_t i = Index(PackTag(client, op));
  return i < 0 || times_ == nullptr ? 0 : Load(times_[i]);
}

ClientLog::ClientLog(const std::string& path, std::uint64_t capacity,
                     bool create)
    : file_(path,
            static_cast<std::size_t>(sizeof(ClientHeader) +
                                     capacity * sizeof(OpRecord)),
            create),
      capacity_(capacity) {
  if (create && file_.ok()) Store(header().capacity, capacity);
}

bool ClientLog::MarkAnswered(std::uint64_t i, std::int64_t now_ns,
                             std::int64_t end_ns) const {
  if (i >= capacity_) return false;
  OpRecord& r = op(i);
  Add(r.answers, std::uint32_t{1});
  ClientHeader& h = header();
  Add(h.answers_total, std::uint64_t{1});
  if (end_ns == 0 || now_ns <= end_ns) {
    Add(h.answers_in_window, std::uint64_t{1});
  }
  std::int64_t expected = 0;
  if (!std::atomic_ref<std::int64_t>(r.done_ns).compare_exchange_strong(
          expected, now_ns, std::memory_order_acq_rel)) {
    return false;
  }
  std::atomic_ref<std::int64_t> last(h.last_done_ns);
  std::int64_t seen = last.load(std::memory_order_relaxed);
  while (seen < now_ns &&
         !last.compare_exchange_weak(seen, now_ns, std::memory_order_relaxed)) {
  }
  return true;
}

}  // namespace rejoin::bench
