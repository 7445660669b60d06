// rejoin-call: issues one operation through a rejoin broker and prints the
// response payload. Exit status 0 when the outcome is kOk, 1 for any other
// outcome or local error (explained on stderr), 2 for bad usage.
//
// Without --session the call uses a random session and a memory journal: a
// crash loses it. With --session and --journal it is a durable session, and
// --list / --collect SEQ read back what an earlier run left pending.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "rejoin/client/client.h"
#include "rejoin/proto/version.h"

namespace {

std::string RandomSessionId() {
  std::random_device rd;
  std::uint64_t bits = (std::uint64_t{rd()} << 32) ^ rd();
  char buf[32];
  std::snprintf(buf, sizeof buf, "call-%016llx",
                static_cast<unsigned long long>(bits));
  return buf;
}

int Fail(const std::string& what) {
  std::cerr << "rejoin-call: " << what << "\n";
  return 1;
}

// Prints an outcome the way the tool's contract says: payload on stdout for
// kOk, a one-line explanation on stderr otherwise.
int Report(const rejoin::Result<rejoin::Reply>& r, rejoin::Seq seq) {
  if (!r.ok()) {
    std::string text = std::string(rejoin::ErrorCodeName(r.status().code()));
    if (seq != 0) text += " (seq " + std::to_string(seq) + ")";
    if (!r.status().message().empty()) text += ": " + r.status().message();
    return Fail(text);
  }
  if (r->status != rejoin::ErrorCode::kOk) {
    std::string text = std::string(rejoin::ErrorCodeName(r->status)) +
                       " (seq " + std::to_string(r->seq) + ")";
    if (!r->payload.empty()) text += ": " + r->payload;
    return Fail(text);
  }
  std::cout << r->payload << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Issue one operation through a rejoin broker.", "rejoin-call"};
  app.set_version_flag("--version", rejoin::VersionLine("rejoin-call"));
  std::string endpoint = "tcp://127.0.0.1:5555";
  std::string service;
  std::string session;
  std::string journal;
  std::int64_t deadline_ms = 10000;
  std::string payload;
  bool list = false;
  std::uint64_t collect = 0;
  rejoin::CurveOptions curve;
  std::string principal;
  app.add_option("--endpoint", endpoint, "broker endpoint")
      ->capture_default_str();
  app.add_option("--curve-key", curve.key_file,
                 "this process's CURVE key pair file (rejoin-keygen), for a "
                 "broker that runs with CURVE");
  app.add_option("--broker-key", curve.broker_key_file,
                 "the broker's public key file (with --curve-key)");
  app.add_option("--principal", principal,
                 "the principal the broker's keys file names for this key: "
                 "a random session id is put in its namespace (NAME/...)");
  app.add_option("--service", service, "service name");
  app.add_option("--session", session,
                 "durable session id (default: random, memory journal)");
  app.add_option("--journal", journal,
                 "journal directory of the session (needs --session)");
  app.add_option("--deadline-ms", deadline_ms, "how long to wait")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--list", list, "list the operations the journal holds");
  app.add_option("--collect", collect,
                 "wait for the outcome of SEQ from an earlier run");
  app.add_option("payload", payload, "request payload");
  CLI11_PARSE(app, argc, argv);

  if (!journal.empty() && session.empty()) {
    std::cerr << "rejoin-call: --journal needs --session\n";
    return 2;
  }
  if ((list || collect != 0) && journal.empty()) {
    std::cerr << "rejoin-call: --list and --collect need --session and "
                 "--journal\n";
    return 2;
  }
  if (!list && collect == 0 && service.empty()) {
    std::cerr << "rejoin-call: --service is required\n";
    return 2;
  }

  rejoin::ClientOptions options;
  options.endpoint = endpoint;
  options.curve = curve;
  options.session_id = !session.empty() ? session
                       : principal.empty()
                           ? RandomSessionId()
                           : principal + "/" + RandomSessionId();
  options.journal_dir = journal;
  options.durability = journal.empty() ? rejoin::Durability::kMemory
                                       : rejoin::Durability::kProcess;
  auto client = rejoin::Client::Open(options);
  if (!client.ok()) return Fail(client.status().ToString());

  std::chrono::milliseconds deadline(deadline_ms);
  if (list) {
    for (const rejoin::OperationInfo& op : (*client)->ListOperations()) {
      std::cout << op.seq << " " << rejoin::ClientOpStateName(op.state) << " "
                << op.service << "\n";
    }
    return 0;
  }
  if (collect != 0) {
    auto r = (*client)->Collect(collect, deadline);
    int rc = Report(r, collect);
    if (r.ok()) (void)(*client)->Forget(collect);
    return rc;
  }

  rejoin::Seq seq = 0;
  auto outcome =
      std::make_shared<std::promise<rejoin::Result<rejoin::Reply>>>();
  auto future = outcome->get_future();
  auto issued = (*client)->CallAsync(
      service, payload,
      [outcome](const rejoin::Result<rejoin::Reply>& r) {
        outcome->set_value(r);
      },
      deadline);
  if (!issued.ok()) return Report(issued.status(), 0);
  seq = *issued;
  auto r = future.get();
  if (!r.ok() && r.status().code() == rejoin::ErrorCode::kDeadlineExceeded &&
      !journal.empty()) {
    std::cerr << "rejoin-call: the operation stays in the journal; collect it "
                 "with --collect "
              << seq << "\n";
  }
  return Report(r, seq);
}
