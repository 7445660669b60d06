#include "idle_shedder.h"

namespace rejoin::broker_internal {

void IdleShedder::Accepted(int fd, Time now) {
  accepted_[fd] = now;
  // A new connection on a reused number must not pass for the old one.
  heard_.erase(fd);
}

void IdleShedder::Closed(int fd) {
  accepted_.erase(fd);
  heard_.erase(fd);
}

void IdleShedder::AcceptFailed(Time now) {
  if (listening_) return;
  listening_ = true;
  since_ = now;
  heard_.clear();
}

std::vector<int> IdleShedder::Due(Time now) {
  std::vector<int> out;
  if (!listening_ || now - since_ < window_) return out;
  for (auto it = accepted_.begin(); it != accepted_.end();) {
    // Accepted during the window: it may still be in its handshake.
    if (it->second <= since_ && heard_.count(it->first) == 0) {
      out.push_back(it->first);
      it = accepted_.erase(it);
    } else {
      ++it;
    }
  }
  shed_ += out.size();
  listening_ = false;
  heard_.clear();
  return out;
}

}  // namespace rejoin::broker_internal
