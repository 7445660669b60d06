// Shared-memory records of a benchmark case, kept outside every library under
// test: files in the case directory mapped MAP_SHARED, so what a process wrote
// survives its kill -9 and the orchestrator reads it after the case.
//
// - Control: the start barrier (clients count themselves ready, the
//   orchestrator publishes the go and end times).
// - ExecCounters: one 32-bit counter per operation, incremented by whichever
//   server process executes it (index = client * capacity + op).
// - ClientLog: one per client session; per operation the first send time,
//   the first completion time and how many answers arrived.
//
// All times are CLOCK_MONOTONIC nanoseconds, which is one clock for every
// process on the machine. Every field is accessed with std::atomic_ref.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rejoin::bench {

// CLOCK_MONOTONIC in nanoseconds.
std::int64_t NowNs();

// An 8-byte tag at the start of every payload: client index in the top 16
// bits, operation index in the low 48.
inline constexpr std::uint64_t kWarmupTag = ~std::uint64_t{0};
inline constexpr std::uint64_t PackTag(std::uint64_t client, std::uint64_t op) {
  return (client << 48) | (op & ((std::uint64_t{1} << 48) - 1));
}
inline constexpr std::uint64_t TagClient(std::uint64_t tag) {
  return tag >> 48;
}
inline constexpr std::uint64_t TagOp(std::uint64_t tag) {
  return tag & ((std::uint64_t{1} << 48) - 1);
}
// A payload of `size` bytes (at least 8) starting with `tag`.
std::string MakePayload(std::uint64_t tag, std::size_t size);
// The tag of a payload; kWarmupTag when it is shorter than 8 bytes.
std::uint64_t ReadTag(const void* data, std::size_t size);

// A file mapped read-write and shared; the file is created and sized (sparse)
// when `create` is set. Move-only.
class MappedFile {
 public:
  MappedFile() = default;
  // Empty on failure (error() says why).
  MappedFile(const std::string& path, std::size_t bytes, bool create);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  bool ok() const { return data_ != nullptr; }
  void* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& error() const { return error_; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::string error_;
};

template <typename T>
T Load(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_acquire);
}
template <typename T>
void Store(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_release);
}
template <typename T>
T Add(T& field, T delta) {
  return std::atomic_ref<T>(field).fetch_add(delta, std::memory_order_acq_rel);
}

struct ControlBlock {
  std::uint64_t ready;          // clients past their warm-up
  std::int64_t go_ns;           // 0 until the orchestrator starts the case
  std::int64_t end_ns;          // issuing stops here (duration mode)
  std::uint64_t idle_welcomed;  // idle sessions welcomed by the broker
};

class Control {
 public:
  Control() = default;
  Control(const std::string& path, bool create);
  bool ok() const { return file_.ok(); }
  ControlBlock& block() const {
    return *static_cast<ControlBlock*>(file_.data());
  }

 private:
  MappedFile file_;
};

// Per operation: how many times a server executed it, and (optional) when it
// first did. The times exist when the orchestrator created the file with
// them (cases with kills); openers find out from the file's size.
class ExecCounters {
 public:
  ExecCounters() = default;
  ExecCounters(const std::string& path, std::uint64_t clients,
               std::uint64_t capacity, bool create, bool with_times = false);
  bool ok() const { return file_.ok(); }
  std::uint64_t clients() const { return clients_; }
  std::uint64_t capacity() const { return capacity_; }
  // Counts one execution (and notes the time of the first); returns the
  // count before it. Tags out of range (warm-up) count nothing and return 0.
  std::uint32_t Execute(std::uint64_t tag) const;
  std::uint32_t Count(std::uint64_t client, std::uint64_t op) const;
  // When the operation first ran (CLOCK_MONOTONIC ns); 0 if it never did or
  // the file has no times.
  std::int64_t FirstRunNs(std::uint64_t client, std::uint64_t op) const;

 private:
  // Index of a tag's operation, or -1 out of range.
  std::int64_t Index(std::uint64_t tag) const;
  MappedFile file_;
  std::uint64_t clients_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint32_t* counts_ = nullptr;
  std::int64_t* times_ = nullptr;
};

enum class OpState : std::uint32_t {
  kNone = 0,
  kReserved = 1,   // about to be handed to the library
  kIssued = 2,     // handed over; the system owns it now
  kAbandoned = 3,  // zmq-raw gave up waiting for it (slot freed)
  kFailed = 4,     // answered with an error status (in doubt, unavailable)
};

struct OpRecord {
  std::int64_t send_ns;   // first send
  std::int64_t done_ns;   // first successful answer, 0 until then
  std::uint32_t sends;    // times sent (lazy pirate resends)
  std::uint32_t state;    // OpState
  std::uint32_t answers;  // answers received, duplicates included
  std::uint32_t reserved;
};

struct ClientHeader {
  std::uint64_t capacity;
  std::uint64_t next_op;            // ops below this were started
  std::uint64_t answers_in_window;  // answers arriving before end_ns
  std::uint64_t answers_total;
  std::uint64_t resends;
  std::uint64_t abandoned;
  std::uint64_t errors;        // error statuses and failed calls
  std::uint64_t incarnations;  // processes that ran this session
  std::int64_t last_done_ns;   // latest first-completion time
  // A restarted rejoin client collects what its journal holds: it sets
  // collect_done when every journaled operation was collected, and counts
  // the ones it could not collect.
  std::uint64_t collect_done;
  std::uint64_t collect_failures;
  // Commits of a shared client journal and the records they carried, added
  // by the process when it ends (in its first session's header).
  std::uint64_t journal_commits;
  std::uint64_t journal_records;
  std::uint64_t padding[3];
};

class ClientLog {
 public:
  ClientLog() = default;
  ClientLog(const std::string& path, std::uint64_t capacity, bool create);
  bool ok() const { return file_.ok(); }
  ClientHeader& header() const {
    return *static_cast<ClientHeader*>(file_.data());
  }
  OpRecord& op(std::uint64_t i) const {
    return reinterpret_cast<OpRecord*>(static_cast<char*>(file_.data()) +
                                       sizeof(ClientHeader))[i];
  }
  std::uint64_t capacity() const { return capacity_; }
  // Records one successful answer at `now_ns`; true for the first one.
  bool MarkAnswered(std::uint64_t op, std::int64_t now_ns,
                    std::int64_t end_ns) const;

 private:
  MappedFile file_;
  std::uint64_t capacity_ = 0;
};

}  // namespace rejoin::bench
