// A set of sequence numbers for the client's per-completion bookkeeping
// (seqs not yet acknowledged, seqs to forget once acknowledged). Calls
// complete almost in order and leave in bulk (everything below a watermark),
// so a sorted vector serves both with no allocation per completion, where a
// node-based std::set allocated and freed one node per call.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "rejoin/proto/types.h"

namespace rejoin::client_internal {

class SeqSet {
 public:
  using const_iterator = std::vector<Seq>::const_iterator;

  // O(1) for a seq above every member (the common case), O(size) otherwise.
  void insert(Seq s) {
    if (seqs_.empty() || s > seqs_.back()) {
      seqs_.push_back(s);
      return;
    }
    auto it = std::lower_bound(seqs_.begin(), seqs_.end(), s);
    if (it == seqs_.end() || *it != s) seqs_.insert(it, s);
  }
  // Returns how many were removed (0 or 1).
  std::size_t erase(Seq s) {
    auto it = std::lower_bound(seqs_.begin(), seqs_.end(), s);
    if (it == seqs_.end() || *it != s) return 0;
    seqs_.erase(it);
    return 1;
  }
  // Removes every member below `s`, appending them (in order) to `out` when
  // given.
  void erase_below(Seq s, std::vector<Seq>* out = nullptr) {
    auto end = lower_bound(s);
    if (out != nullptr) out->insert(out->end(), seqs_.cbegin(), end);
    seqs_.erase(seqs_.cbegin(), end);
  }
  const_iterator lower_bound(Seq s) const {
    return std::lower_bound(seqs_.cbegin(), seqs_.cend(), s);
  }
  const_iterator begin() const { return seqs_.cbegin(); }
  const_iterator end() const { return seqs_.cend(); }
  bool empty() const { return seqs_.empty(); }
  std::size_t size() const { return seqs_.size(); }

 private:
  std::vector<Seq> seqs_;  // sorted, no duplicates
};

}  // namespace rejoin::client_internal
