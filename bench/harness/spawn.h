// Child processes of the orchestrator: spawned with their output in a log
// file, killed with SIGKILL and reaped with wait4 so their CPU time and peak
// RSS are known even after kill -9. Every live child is also registered in a
// process-wide table that a SIGINT/SIGTERM handler and exit() clean up, and
// each child asks the kernel to kill it if the orchestrator dies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rejoin::bench {

struct ProcessUsage {
  double cpu_s = 0;       // user + system, summed over processes
  long peak_rss_kib = 0;  // largest VmHWM of any of them
  int processes = 0;
};

// Starts argv[0] with argv; stdout and stderr go to `log_path` (appended).
// Returns the pid, or -1.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path);

// Reaps `pid` if it has exited (adding to `usage`); true when it has. The exit
// status goes to `status` (raw wait status).
bool TryReap(pid_t pid, ProcessUsage& usage, int* status);

// SIGKILL and reap, adding to `usage`. No-op for pid <= 0.
void KillAndReap(pid_t pid, ProcessUsage& usage);

// Resident set of a live process from /proc/<pid>/status ("VmRSS"/"VmHWM"),
// KiB; 0 when unknown.
long ReadStatusKib(pid_t pid, const char* field);

// Installs the SIGINT/SIGTERM/atexit cleanup of every spawned child.
void InstallChildCleanup();

}  // namespace rejoin::bench
