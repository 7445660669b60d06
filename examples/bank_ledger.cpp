// A decision is written in one write() before it is applied in memory and
// before Apply returns, so a kill -9 at any point leaves either no line (the
// transfer did not happen) or a whole line (it did): exactly what the
// resolve hook needs to tell the two apart.
#include "bank_ledger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

namespace rejoin::examples {
namespace {

Status IoError(const std::string& what) {
  return Status(ErrorCode::kIoError, what + ": " + std::strerror(errno));
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool ValidAccount(int a) { return a >= 0 && a < kBankAccounts; }

// Parses one ledger line (without its newline).
bool ParseLine(std::string_view line, SessionId& session, Seq& seq,
               LedgerEntry& e) {
  std::vector<std::string_view> f = Fields(line);
  if (f.size() != 6) return false;
  session = std::string(f[0]);
  if (!IsValidId(session) || !ParseNumber(f[1], seq) ||
      !ParseNumber(f[2], e.transfer.from) ||
      !ParseNumber(f[3], e.transfer.to) ||
      !ParseNumber(f[4], e.transfer.amount)) {
    return false;
  }
  if (!ValidAccount(e.transfer.from) || !ValidAccount(e.transfer.to)) {
    return false;
  }
  e.reply = std::string(f[5]);
  e.applied = e.reply.rfind("ok:", 0) == 0;
  return e.applied || e.reply.rfind("rejected:", 0) == 0;
}

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

Result<Transfer> ParseTransfer(std::string_view payload) {
  std::vector<std::string_view> f = Fields(payload);
  Transfer t;
  if (f.size() != 3 || !ParseNumber(f[0], t.from) || !ParseNumber(f[1], t.to) ||
      !ParseNumber(f[2], t.amount)) {
    return Result<Transfer>(ErrorCode::kInvalidArgument,
                            "expected \"FROM TO AMOUNT\"");
  }
  if (!ValidAccount(t.from) || !ValidAccount(t.to) || t.from == t.to) {
    return Result<Transfer>(
        ErrorCode::kInvalidArgument,
        "accounts must be distinct, 0.." + std::to_string(kBankAccounts - 1));
  }
  if (t.amount <= 0) {
    return Result<Transfer>(ErrorCode::kInvalidArgument,
                            "amount must be positive");
  }
  return t;
}

Result<std::unique_ptr<BankLedger>> BankLedger::Open(const std::string& path,
                                                     Mode mode, bool sync) {
  const int flags = mode == Mode::kReadOnly
                        ? O_RDONLY | O_CLOEXEC
                        : O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC;
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return IoError("open " + path);
  std::unique_ptr<BankLedger> ledger(new BankLedger(fd, sync));

  std::string contents;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n =
        ::pread(fd, buf, sizeof(buf), static_cast<off_t>(contents.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("read " + path);
    }
    if (n == 0) break;
    contents.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < contents.size()) {
    std::size_t end = contents.find('\n', pos);
    if (end == std::string::npos) break;  // torn tail
    ++line_no;
    SessionId session;
    Seq seq = 0;
    LedgerEntry e;
    if (!ParseLine(std::string_view(contents).substr(pos, end - pos), session,
                   seq, e)) {
      return Result<std::unique_ptr<BankLedger>>(
          ErrorCode::kCorrupt,
          path + ": line " + std::to_string(line_no) + " is malformed");
    }
    ledger->Record(session, seq, e);
    pos = end + 1;
  }
  if (pos < contents.size() && mode == Mode::kReadWrite) {
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) {
      return IoError("truncate torn tail of " + path);
    }
  }
  return Result<std::unique_ptr<BankLedger>>(std::move(ledger));
}

BankLedger::BankLedger(int fd, bool sync)
    : fd_(fd), sync_(sync), balances_(kBankAccounts, kInitialBalance) {}

BankLedger::~BankLedger() { ::close(fd_); }

Result<LedgerEntry> BankLedger::Apply(const SessionId& session, Seq seq,
                                      const Transfer& t) {
  std::lock_guard<std::mutex> lock(mu_);
  LedgerEntry e;
  e.transfer = t;
  const std::int64_t from = balances_[static_cast<std::size_t>(t.from)];
  const std::int64_t to = balances_[static_cast<std::size_t>(t.to)];
  if (from < t.amount) {
    e.reply = "rejected:insufficient_funds";
  } else {
    e.applied = true;
    e.reply = "ok:" + std::to_string(from - t.amount) + ":" +
              std::to_string(to + t.amount);
  }
  const std::string line = session + " " + std::to_string(seq) + " " +
                           std::to_string(t.from) + " " + std::to_string(t.to) +
                           " " + std::to_string(t.amount) + " " + e.reply +
                           "\n";
  if (!WriteAll(fd_, line)) return IoError("write ledger");
  if (sync_ && ::fdatasync(fd_) != 0) return IoError("fdatasync ledger");
  Record(session, seq, e);
  return e;
}

void BankLedger::Record(const SessionId& session, Seq seq,
                        const LedgerEntry& e) {
  if (e.applied) {
    balances_[static_cast<std::size_t>(e.transfer.from)] -= e.transfer.amount;
    balances_[static_cast<std::size_t>(e.transfer.to)] += e.transfer.amount;
    ++applied_;
  } else {
    ++rejected_;
  }
  entries_[{session, seq}] = e;
  ++counts_[{session, seq}];
}

std::optional<LedgerEntry> BankLedger::Find(const SessionId& session,
                                            Seq seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({session, seq});
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

LedgerReport BankLedger::Check() const {
  std::lock_guard<std::mutex> lock(mu_);
  LedgerReport r;
  r.balances = balances_;
  for (std::int64_t b : balances_) r.total += b;
  r.applied = applied_;
  r.rejected = rejected_;
  for (const auto& [key, count] : counts_) {
    if (count > 1) r.duplicates.push_back({key, count});
  }
  return r;
}

}  // namespace rejoin::examples
