// The echo_server example as a process whose journal stops accepting writes
// (RLIMIT_FSIZE with SIGXFSZ ignored: every write past the limit fails with
// EFBIG, as on a full disk): it says GOODBYE, answers nothing more, and
// exits non-zero instead of staying up doing nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "support/fake_broker.h"
#include "support/temp_dir.h"

extern char** environ;

namespace rejoin::testing {
namespace {

// Waits up to `timeout` for `pid` to exit; its exit code, or nullopt (then
// it is killed) when it did not end or ended by a signal.
std::optional<int> ExitCodeWithin(pid_t pid,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return std::nullopt;
}

TEST(EchoServer, JournalWriteFailureEndsTheProcessNonZero) {
  TempDir dir;
  FakeBroker broker;
  // The shell ignores SIGXFSZ (an ignored signal stays ignored across exec)
  // and limits file size to 64 blocks of 512 bytes (32 KiB).
  const std::string command = std::string("trap '' XFSZ; ulimit -f 64; exec ") +
                              ECHO_SERVER_BIN + " --endpoint " +
                              broker.endpoint() + " --journal " + dir.path() +
                              " --server-id echo-1";
  std::vector<std::string> args = {"/bin/sh", "-c", command};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ),
            0);

  ASSERT_TRUE(broker.AcceptHello());
  bool goodbye = false;
  int answered = 0;
  const std::string payload(4096, 'x');
  for (Seq seq = 1; seq <= 64 && !goodbye; ++seq) {
    broker.SendRequest("alice", seq, payload);
    auto m = broker.Next(std::chrono::seconds(5));
    if (!m) break;
    if (std::holds_alternative<Response>(m->message)) ++answered;
    if (auto* g = std::get_if<Goodbye>(&m->message)) {
      goodbye = true;
      EXPECT_EQ(g->reason, "journal failure");
    }
  }
  EXPECT_TRUE(goodbye);
  EXPECT_GE(answered, 1);  // it served until the limit
  EXPECT_EQ(ExitCodeWithin(pid, std::chrono::seconds(10)), 3);
}

}  // namespace
}  // namespace rejoin::testing
