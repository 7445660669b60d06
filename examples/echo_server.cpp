// echo_server: answers every "echo" request with its payload. The handler is
// idempotent, so operations in doubt after a crash are simply run again.
// Runs until SIGINT or SIGTERM, or until its journal fails (then exits 3).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "curve_flags.h"
#include "example_util.h"
#include "rejoin/proto/version.h"
#include "rejoin/server/server.h"

int main(int argc, char** argv) {
  rejoin::ServerOptions options;
  options.server_id = "echo-1";
  std::string service = "echo";
  std::string durability = "process";

  CLI::App app{"rejoin echo server"};
  app.set_version_flag("--version", rejoin::VersionLine("echo_server"));
  app.add_option("--endpoint", options.endpoint, "broker endpoint")
      ->capture_default_str();
  rejoin::examples::AddCurveFlags(app, options.curve);
  app.add_option("--server-id", options.server_id, "durable server id")
      ->capture_default_str();
  app.add_option("--journal", options.journal_dir,
                 "journal directory (not needed with --durability memory)");
  app.add_option("--durability", durability, "memory, process or sync")
      ->check(CLI::IsMember(rejoin::examples::DurabilityNames()))
      ->capture_default_str();
  app.add_flag("--inline", options.inline_handlers,
               "run the handler on the I/O thread (fast handlers)");
  app.add_option("--concurrency", options.concurrency,
                 "handlers running at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--service", service, "service name")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.durability = rejoin::examples::DurabilityNames().at(durability);

  rejoin::ServiceOptions echo;
  echo.name = service;
  echo.idempotent = true;
  echo.policy = rejoin::InDoubtPolicy::kReexecute;
  echo.handler = [](const rejoin::RequestView& r) {
    return rejoin::HandlerReply{rejoin::ErrorCode::kOk, std::string(r.payload)};
  };

  rejoin::examples::BlockStopSignals();
  auto server = rejoin::Server::Open(options, {echo});
  if (!server.ok()) {
    std::fprintf(stderr, "echo_server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  std::printf("echo_server: %s serving '%s' at %s, incarnation %llu\n",
              options.server_id.c_str(), service.c_str(),
              options.endpoint.c_str(),
              static_cast<unsigned long long>((*server)->incarnation()));
  std::fflush(stdout);

  const int exit_code =
      rejoin::examples::WaitForStopSignalOrFailure(**server, "echo_server");
  const rejoin::ServerStats stats = (*server)->stats();
  server.value().reset();
  std::printf("echo_server: executed %llu, duplicates %llu, reexecuted %llu\n",
              static_cast<unsigned long long>(stats.executed),
              static_cast<unsigned long long>(stats.duplicates),
              static_cast<unsigned long long>(stats.reexecuted));
  return exit_code;
}
