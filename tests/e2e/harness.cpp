// Process, port and file helpers for the end-to-end tests.
#include "e2e/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rejoin::testing {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() failed");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string LoopbackEndpoint(int port) {
  return "tcp://127.0.0.1:" + std::to_string(port);
}

Process::Process(const std::string& binary, std::vector<std::string> args,
                 const std::string& log_file) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (!log_file.empty()) {
      int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  reaped_ = false;
}

Process::~Process() {
  if (!reaped_) {
    Kill9();
  }
}

Process::Process(Process&& other) noexcept
    : pid_(other.pid_), status_(other.status_), reaped_(other.reaped_) {
  other.reaped_ = true;
  other.pid_ = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (!reaped_) Kill9();
    pid_ = other.pid_;
    status_ = other.status_;
    reaped_ = other.reaped_;
    other.reaped_ = true;
    other.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    reaped_ = true;
    return false;
  }
  return true;
}

void Process::Kill9() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status_, 0);
  reaped_ = true;
}

static int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  if (!WaitFor([&] { return !running(); }, timeout)) return kStillRunning;
  return ExitCode(status_);
}

int Process::Terminate(std::chrono::milliseconds grace) {
  if (reaped_) return ExitCode(status_);
  ::kill(pid_, SIGTERM);
  int code = Wait(grace);
  if (code == kStillRunning) {
    Kill9();
    return ExitCode(status_);
  }
  return code;
}

std::map<std::pair<std::string, std::uint64_t>, int> ReadExecutions(
    const std::string& ledger) {
  std::map<std::pair<std::string, std::uint64_t>, int> out;
  std::ifstream in(ledger);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string session;
    std::uint64_t seq = 0;
    if (fields >> session >> seq) ++out[{session, seq}];
  }
  return out;
}

std::vector<Outcome> ReadOutcomes(const std::string& file) {
  std::vector<Outcome> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Outcome o;
    if (fields >> o.session >> o.seq >> o.status) {
      std::getline(fields, o.payload);
      if (!o.payload.empty() && o.payload[0] == ' ') o.payload.erase(0, 1);
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace rejoin::testing
