// Spawning and reaping role processes. The registry is a fixed array of
// atomics so that the signal handler can walk it safely.
#include "spawn.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace rejoin::bench {
namespace {

constexpr int kMaxChildren = 1024;
std::atomic<pid_t> g_children[kMaxChildren];

void Register(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void Unregister(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void KillRegistered() {
  for (auto& slot : g_children) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

void OnStopSignal(int sig) {
  KillRegistered();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void AddUsage(const rusage& ru, ProcessUsage& usage) {
  usage.cpu_s +=
      static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
      static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  usage.peak_rss_kib = std::max(usage.peak_rss_kib, ru.ru_maxrss);
  ++usage.processes;
}

}  // namespace

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int fd =
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    // Many sessions need many descriptors.
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
      nofile.rlim_cur = nofile.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  Register(pid);
  return pid;
}

bool TryReap(pid_t pid, ProcessUsage& usage, int* status) {
  if (pid <= 0) return true;
  rusage ru{};
  int st = 0;
  const pid_t r = ::wait4(pid, &st, WNOHANG, &ru);
  if (r == 0) return false;
  if (r == pid) {
    AddUsage(ru, usage);
    if (status != nullptr) *status = st;
  }
  Unregister(pid);
  return true;
}

void KillAndReap(pid_t pid, ProcessUsage& usage) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  rusage ru{};
  int st = 0;
  if (::wait4(pid, &st, 0, &ru) == pid) AddUsage(ru, usage);
  Unregister(pid);
}

long ReadStatusKib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::strtol(line.c_str() + n + 1, nullptr, 10);
    }
  }
  return 0;
}

void InstallChildCleanup() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  std::atexit(KillRegistered);
}

}  // namespace rejoin::bench
