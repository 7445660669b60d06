// The broker's roster file (BrokerOptions::roster): the server ids that have
// registered with brokers keeping this file, so that a restarted broker can
// end its grace period as soon as every one of them has returned and
// reported (PROTOCOL.md §6.5). It is an accelerator only: a missing or
// unreadable roster means the full grace period, as without one.
//
// Format, version 1: text, one item per line, each line ending in '\n':
//
//   rejoin-roster 1
//   state complete            ("complete" or "partial", see RosterContents)
//   epoch 00c0ffee12345678    (zero or more: 16 lowercase hex digits)
//   server echo-1             (zero or more: ids per PROTOCOL.md §8, sorted)
//   end 1                     (the number of server lines)
//
// Anything else (another version, an unknown or misplaced line, a bad id or
// epoch, a duplicate, a count that does not match, a missing `end`) is
// corrupt. Writes go to a temporary file in the same directory, which is
// fdatasync'ed, renamed over the roster and followed by an fsync of the
// directory, so a reader sees the old contents or the new, never a mix.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin::broker_internal {

// Epochs kept in a roster: the most recent brokers that kept it.
inline constexpr std::size_t kMaxRosterEpochs = 16;

struct RosterContents {
  // complete: every server that a broker keeping this file has dispatched to,
  // or that may still hold operations from before, is listed. partial: a
  // broker started without a usable roster (missing, corrupt, or an endpoint
  // came from a broker that did not keep it) and its grace period has not
  // run out yet; the list may lack servers.
  bool complete = false;
  // Epochs of the brokers that kept this file, oldest first.
  std::vector<Epoch> epochs;
  std::set<std::string> servers;
  bool operator==(const RosterContents&) const = default;
};

// The file's bytes for `contents`.
std::string EncodeRoster(const RosterContents& contents);
// Errors: kCorrupt (with the reason).
Result<RosterContents> DecodeRoster(std::string_view text);

// Errors: kNotFound (no file), kIoError (unreadable), kCorrupt.
Result<RosterContents> ReadRoster(const std::string& path);
// Replaces the file durably (temporary file, fdatasync, rename, fsync of the
// directory). Errors: kIoError; the previous file is then left unchanged.
Status WriteRoster(const std::string& path, const RosterContents& contents);

// An exclusive lock that keeps two brokers from keeping the same roster
// (`<path>.lock`, flock). Released when the object goes away or the process
// dies.
class RosterLock {
 public:
  RosterLock() = default;
  ~RosterLock();
  RosterLock(RosterLock&& other) noexcept;
  RosterLock& operator=(RosterLock&& other) noexcept;
  RosterLock(const RosterLock&) = delete;
  RosterLock& operator=(const RosterLock&) = delete;

  // Errors: kIoError (cannot create the lock file, or another process holds
  // it).
  static Result<RosterLock> Acquire(const std::string& roster_path);

 private:
  explicit RosterLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace rejoin::broker_internal
