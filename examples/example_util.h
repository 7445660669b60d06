// Small pieces the example servers share: parsing a durability flag and
// waiting for SIGINT/SIGTERM (without a signal handler) or a server failure.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "rejoin/proto/types.h"
#include "rejoin/server/server.h"

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

// Waits for SIGINT/SIGTERM or for the server to stop for good (its journal
// failed). Returns 0 after a signal; after a failure, prints it and returns
// the exit code a server that can no longer serve must end with (3), so
// that a supervisor restarts it.
inline int WaitForStopSignalOrFailure(const Server& server,
                                      const char* program) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec tick{0, 100'000'000};  // 100 ms between looks at the server
  for (;;) {
    if (sigtimedwait(&set, nullptr, &tick) > 0) return 0;
    if (Status s = server.status(); !s.ok()) {
      std::fprintf(stderr, "%s: stopped serving: %s\n", program,
                   s.ToString().c_str());
      return 3;
    }
  }
}

}  // namespace rejoin::examples
