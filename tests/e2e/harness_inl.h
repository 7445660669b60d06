// Template definitions of harness.h.
#pragma once

#include <thread>

namespace rejoin::testing {

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

}  // namespace rejoin::testing
