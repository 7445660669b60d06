// Small pieces the example servers share: parsing a durability flag and
// waiting for SIGINT/SIGTERM without a signal handler.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <map>
#include <string>

#include "rejoin/proto/types.h"

namespace rejoin::examples {

inline const std::map<std::string, Durability>& DurabilityNames() {
  static const std::map<std::string, Durability> names = {
      {"memory", Durability::kMemory},
      {"process", Durability::kProcess},
      {"sync", Durability::kSync},
  };
  return names;
}

// Blocks SIGINT and SIGTERM in the calling thread. Call before starting any
// thread, so every thread inherits the mask and the signals stay pending
// until WaitForStopSignal collects them.
inline void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Returns the signal that arrived.
inline int WaitForStopSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

}  // namespace rejoin::examples
