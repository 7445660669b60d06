// A client journal damaged on disk between two runs of a client process:
// the next run must refuse to start, with an error naming the segment and
// the offset, rather than cut the damage off and issue seqs it has already
// used (whose stored answers the server would hand back as the answers to
// new calls). The operator's rejoin-ctl then inspects the journal without
// changing it and salvages it; the client starts again under a new journal
// id and its new calls get their own answers. A torn tail, by contrast, is
// cut at the next start and logged with its size by client and server.
#include <filesystem>
#include <string>
#include <vector>

#include "e2e/e2e_fixture.h"
#include "rejoin/proto/journal.h"
#include "support/files.h"

namespace rejoin::testing {
namespace {

constexpr auto kWait = std::chrono::seconds(30);
constexpr char kSeg1[] = "seg-000000000001.rjl";

// Start offsets of a segment's records, plus the end of the last one.
std::vector<std::size_t> RecordOffsets(const std::string& bytes) {
  std::vector<std::size_t> at;
  std::size_t p = 16;
  while (p + 9 <= bytes.size()) {
    at.push_back(p);
    std::size_t length = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      length |=
          static_cast<std::size_t>(static_cast<unsigned char>(bytes[p + 4 + i]))
          << (8 * i);
    }
    p += 9 + length;
  }
  at.push_back(p);
  return at;
}

class JournalDamageEndToEnd : public EndToEnd {
 protected:
  int RunClient(const std::string& session, std::size_t count,
                const std::string& log) {
    Process p(REJOIN_TEST_CLIENT_BIN,
              {"--endpoint", endpoint_, "--session", session, "--journal",
               dir_.Sub("client-" + session), "--outcomes", Outcomes(),
               "--count", std::to_string(count), "--deadline-ms", "20000"},
              dir_.Sub(log));
    return p.Wait(kWait);
  }
  int RunCtl(std::vector<std::string> args, const std::string& log) {
    Process p(REJOIN_CTL_BIN, std::move(args), dir_.Sub(log));
    return p.Wait(kWait);
  }
  std::string Outcomes() const { return dir_.Sub("outcomes"); }
};

TEST_F(JournalDamageEndToEnd, DamagedClientJournalRefusesToStartUntilSalvaged) {
  StartBroker();
  StartServer("s1");
  ASSERT_EQ(RunClient("c1", 6, "run1.log"), 0);
  ASSERT_EQ(ReadOutcomes(Outcomes()).size(), 6u);

  // One bit of an early record, with many intact records after it.
  const std::string journal = dir_.Sub("client-c1");
  const std::string segment = journal + "/" + kSeg1;
  std::string bytes = ReadFile(segment);
  const std::vector<std::size_t> at = RecordOffsets(bytes);
  ASSERT_GE(at.size(), 8u);
  bytes[at[2] + 10] = static_cast<char>(bytes[at[2] + 10] ^ 0x01);
  WriteFile(segment, bytes);

  EXPECT_EQ(RunClient("c1", 6, "run2.log"), 1);
  const std::string log = ReadFile(dir_.Sub("run2.log"));
  EXPECT_NE(
      log.find(std::string(kSeg1) + " at offset " + std::to_string(at[2])),
      std::string::npos)
      << log;
  EXPECT_EQ(ReadFile(segment), bytes);
  EXPECT_EQ(ReadOutcomes(Outcomes()).size(), 6u);  // no call was made
  for (const Outcome& o : ReadOutcomes(Outcomes())) {
    EXPECT_EQ(Executions("c1", o.seq), 1);
  }

  // The operator: inspect reports it (exit 1) and changes nothing.
  EXPECT_EQ(RunCtl({"journal", "inspect", journal}, "inspect.log"), 1);
  EXPECT_NE(ReadFile(dir_.Sub("inspect.log")).find("corrupt"),
            std::string::npos);
  EXPECT_EQ(ReadFile(segment), bytes);
  // Salvage refuses without --yes, then does it.
  EXPECT_EQ(RunCtl({"journal", "salvage", journal}, "refused.log"), 2);
  EXPECT_EQ(ReadFile(segment), bytes);
  ASSERT_EQ(RunCtl({"journal", "salvage", journal, "--yes"}, "salvage.log"), 0)
      << ReadFile(dir_.Sub("salvage.log"));
  EXPECT_EQ(ReadFile(segment + ".damaged"), bytes);

  // The client starts again under the new journal id; its new calls take
  // seqs above the gap, are new to the server and get their own answers.
  // (The op the damage rolled back to PREPARED stays pending: the server
  // released it long ago.)
  auto client = OpenClient("c1");
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 4; ++i) {
    const std::string payload = "after-salvage-" + std::to_string(i);
    Result<Reply> r = client->Call("echo", payload, kWait);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, ErrorCode::kOk);
    EXPECT_GE(r->seq, kSalvageSeqGap);
    EXPECT_EQ(r->payload, Expected(payload, r->seq));
    EXPECT_EQ(Executions("c1", r->seq), 1);
  }
}

// The newest segment file of a journal directory.
std::string LastSegment(const std::string& dir) {
  std::string last;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.ends_with(".rjl") && name > last) last = name;
  }
  return dir + "/" + last;
}

// A torn tail (what kill -9 inside a write leaves) is cut at the next start,
// and both libraries say so in their logs, with the size.
TEST_F(JournalDamageEndToEnd, TornTailsAreCutAndLoggedWithTheirSize) {
  StartBroker();
  Process& server = StartServer("s1");
  ASSERT_EQ(RunClient("c1", 3, "run1.log"), 0);
  server.Terminate();  // stopped, whatever its exit status

  const std::string torn = "\x11\x22\x33\x44\x05";  // 5 bytes of a header
  for (const char* dir : {"server-s1", "client-c1"}) {
    const std::string segment = LastSegment(dir_.Sub(dir));
    WriteFile(segment, ReadFile(segment) + torn);
  }
  Process& again = StartServer("s1");
  ASSERT_EQ(RunClient("c1", 2, "run2.log"), 0)
      << ReadFile(dir_.Sub("run2.log"));
  const std::string client_log = ReadFile(dir_.Sub("run2.log"));
  EXPECT_NE(client_log.find("torn tail of 5 bytes"), std::string::npos)
      << client_log;
  // The server logs at open, before it serves.
  const std::string server_log = dir_.Sub("server-s1.log");
  EXPECT_TRUE(WaitFor(
      [&] {
        return ReadFile(server_log).find("torn tail of 5 bytes") !=
               std::string::npos;
      },
      kWait))
      << ReadFile(server_log);
  again.Terminate();
}

}  // namespace
}  // namespace rejoin::testing
