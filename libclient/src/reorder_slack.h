// ReorderSlack: how many later sends must be answered before the client
// presumes an unanswered operation lost (Client::Impl::HintLosses), the
// counterpart of TCP's duplicate-ACK threshold.
//
// One broker and one server answer in the order requests left, and a small
// slack finds a loss a few answers after it; several servers, or a path
// that reorders, need a larger one or every overtaken answer is resent. The
// slack is measured: for each answer to an operation sent once, how many
// sends after it were answered before it. Every kWindow such answers the
// slack becomes 2 x the largest distance seen + 2, within [kMin, kMax]; a
// larger distance raises it at once, and a needless resend (both answers
// arrived) doubles it, and keeps it from falling at the end of that window.
// It starts at kMax, until a window has shown the order.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rejoin::client_internal {

class ReorderSlack {
 public:
  static constexpr std::uint64_t kMin = 4;
  static constexpr std::uint64_t kMax = 16;
  static constexpr std::uint64_t kWindow = 512;

  // An operation sent once was answered; `send_order` numbers its send
  // among all sends of the session.
  void Answered(std::uint64_t send_order) {
    if (send_order > highest_) {
      highest_ = send_order;
    } else {
      window_max_ = std::max(window_max_, highest_ - send_order);
    }
    const std::uint64_t need = Need();
    slack_ = std::max(slack_, need);
    if (++answers_ < kWindow) return;
    if (!spurious_) slack_ = need;
    window_max_ = 0;
    answers_ = 0;
    spurious_ = false;
  }

  // A resend turned out needless: the path reorders more than measured.
  void Spurious() {
    slack_ = std::min(kMax, slack_ * 2);
    spurious_ = true;
  }

  std::uint64_t slack() const { return slack_; }

 private:
  std::uint64_t Need() const {
    return std::clamp(2 * window_max_ + 2, kMin, kMax);
  }

  std::uint64_t slack_ = kMax;
  std::uint64_t highest_ = 0;
  std::uint64_t window_max_ = 0;
  std::uint64_t answers_ = 0;
  bool spurious_ = false;
};

}  // namespace rejoin::client_internal
