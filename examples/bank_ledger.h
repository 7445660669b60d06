// The bank example's own durable record: an append-only text file with one
// line per transfer decision, keyed by (session, seq), replayed on open to
// rebuild the balances. It is the application's record, apart from rejoin's
// journal; the bank server's resolve hook reads it to learn whether an
// in-doubt transfer was carried out before a crash.
//
// Line format: "<session> <seq> <from> <to> <amount> <reply>\n", where reply
// is "ok:<from balance>:<to balance>" for an applied transfer and
// "rejected:<reason>" otherwise. A last line without its newline is a torn
// write and is cut off on open.
//
// Apply() records whatever it is asked to, even a (session, seq) recorded
// before: keeping rejoin's exactly-once promise is the server's job, and
// Check() reports any key recorded twice so that a test can prove it kept it.
//
// Thread-safe. Errors are Status values; nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin::examples {

inline constexpr int kBankAccounts = 10;
inline constexpr std::int64_t kInitialBalance = 1000;
inline constexpr std::int64_t kInitialTotal = kBankAccounts * kInitialBalance;

struct Transfer {
  int from = 0;
  int to = 0;
  std::int64_t amount = 0;
};

// Parses a request payload "FROM TO AMOUNT": accounts in [0, kBankAccounts),
// distinct, amount > 0.
Result<Transfer> ParseTransfer(std::string_view payload);

struct LedgerEntry {
  Transfer transfer;
  bool applied = false;
  std::string reply;
};

struct LedgerReport {
  std::vector<std::int64_t> balances;
  std::int64_t total = 0;
  std::size_t applied = 0;
  std::size_t rejected = 0;
  // Every (session, seq) recorded more than once, with its count.
  std::vector<std::pair<std::pair<SessionId, Seq>, int>> duplicates;
  bool ok() const { return total == kInitialTotal && duplicates.empty(); }
};

class BankLedger {
 public:
  enum class Mode { kReadWrite, kReadOnly };

  // Opens (or, read-write, creates) the ledger at `path` and replays it.
  // Read-write cuts a torn last line off; read-only ignores it. With `sync`,
  // every Apply() fdatasyncs before it returns. Errors: kIoError, kCorrupt
  // (a bad line before the last).
  static Result<std::unique_ptr<BankLedger>> Open(const std::string& path,
                                                  Mode mode, bool sync);
  ~BankLedger();
  BankLedger(const BankLedger&) = delete;
  BankLedger& operator=(const BankLedger&) = delete;

  // Decides `t` against the balances, records the decision, then applies
  // it. Returns the entry as recorded; kIoError if it could not be written
  // (nothing is applied then).
  Result<LedgerEntry> Apply(const SessionId& session, Seq seq,
                            const Transfer& t);

  // The latest decision recorded for (session, seq), if any.
  std::optional<LedgerEntry> Find(const SessionId& session, Seq seq) const;

  LedgerReport Check() const;

 private:
  BankLedger(int fd, bool sync);
  // Applies a decision to the in-memory state (replay and Apply).
  void Record(const SessionId& session, Seq seq, const LedgerEntry& e);

  const int fd_;
  const bool sync_;
  mutable std::mutex mu_;
  std::vector<std::int64_t> balances_;                        // by mu_
  std::map<std::pair<SessionId, Seq>, LedgerEntry> entries_;  // by mu_
  std::map<std::pair<SessionId, Seq>, int> counts_;           // by mu_
  std::size_t applied_ = 0;                                   // by mu_
  std::size_t rejected_ = 0;                                  // by mu_
};

}  // namespace rejoin::examples
