// The bank_server example as a process, against a scripted broker: a
// transfer left in doubt by a crash is settled from the bank's ledger, never
// applied twice, and `bank_server --check` tells a clean ledger from one
// with a duplicate.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "bank_ledger.h"
#include "server/server_fixture.h"
#include "support/fake_broker.h"

extern char** environ;

namespace rejoin::testing {
namespace {

using examples::BankLedger;
using examples::Transfer;

// A child process, sent SIGTERM and reaped at scope end.
class Process {
 public:
  explicit Process(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(
        posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  }
  ~Process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      Wait();
    }
  }
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

int RunCheck(const std::string& ledger) {
  Process check({BANK_SERVER_BIN, "--check", "--ledger", ledger});
  return check.Wait();
}

// Starts bank_server on `journal` and completes its return to `broker`.
std::unique_ptr<Process> StartBank(FakeBroker& broker,
                                   const std::string& journal,
                                   const std::string& ledger) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      BANK_SERVER_BIN, "--endpoint", broker.endpoint(), "--server-id",
      kServerId, "--journal", journal, "--ledger", ledger});
  auto hello = broker.AcceptHello();
  EXPECT_TRUE(hello);
  if (hello && hello->incarnation > 1) {
    EXPECT_TRUE(broker.NextAs<StateExchange>());
  }
  return p;
}

TEST(BankServer, InDoubtTransferFoundInLedgerIsNotAppliedAgain) {
  TempDir dir;
  const std::string journal = dir.path() + "/journal";
  const std::string ledger = dir.path() + "/ledger";
  // The previous process recorded the transfer in its ledger and died
  // before it could journal EXECUTED.
  { CraftedJournal(journal).Received("alice", 1, "bank.transfer", "0 1 100"); }
  {
    auto l = BankLedger::Open(ledger, BankLedger::Mode::kReadWrite, false);
    ASSERT_TRUE(l.ok());
    ASSERT_TRUE((*l)->Apply("alice", 1, Transfer{0, 1, 100}).ok());
  }
  FakeBroker broker;
  {
    auto bank = StartBank(broker, journal, ledger);
    broker.SendRequest("alice", 1, "0 1 100", "bank.transfer");
    std::string payload;
    auto response = broker.NextAs<Response>(&payload);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, ErrorCode::kOk);
    EXPECT_EQ(payload, "ok:900:1100");
  }
  EXPECT_EQ(RunCheck(ledger), 0);
}

TEST(BankServer, InDoubtTransferMissingFromLedgerIsAppliedOnce) {
  TempDir dir;
  const std::string journal = dir.path() + "/journal";
  const std::string ledger = dir.path() + "/ledger";
  // Died after journaling RECEIVED, before touching the ledger.
  { CraftedJournal(journal).Received("alice", 1, "bank.transfer", "2 3 50"); }
  FakeBroker broker;
  {
    auto bank = StartBank(broker, journal, ledger);
    broker.SendRequest("alice", 1, "2 3 50", "bank.transfer");
    std::string payload;
    ASSERT_TRUE(broker.NextAs<Response>(&payload));
    EXPECT_EQ(payload, "ok:950:1050");
    // A duplicate is answered from the journal.
    broker.SendRequest("alice", 1, "2 3 50", "bank.transfer");
    ASSERT_TRUE(broker.NextAs<Response>(&payload));
    EXPECT_EQ(payload, "ok:950:1050");
  }
  EXPECT_EQ(RunCheck(ledger), 0);
  auto l = BankLedger::Open(ledger, BankLedger::Mode::kReadOnly, false);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)->Check().applied, 1u);
}

TEST(BankServer, CheckFailsOnDuplicateTransfer) {
  TempDir dir;
  const std::string ledger = dir.path() + "/ledger";
  {
    auto l = BankLedger::Open(ledger, BankLedger::Mode::kReadWrite, false);
    ASSERT_TRUE(l.ok());
    ASSERT_TRUE((*l)->Apply("alice", 1, Transfer{0, 1, 1}).ok());
    ASSERT_TRUE((*l)->Apply("alice", 1, Transfer{0, 1, 1}).ok());
  }
  EXPECT_EQ(RunCheck(ledger), 1);
}

}  // namespace
}  // namespace rejoin::testing
