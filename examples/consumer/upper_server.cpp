// upper_server: a service of its own ("upper", answers its payload in upper
// case), linked against an installed rejoin. Usage:
//   upper_server ENDPOINT JOURNAL_DIR
// Serves until SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <string>

#include "rejoin/server/server.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: upper_server ENDPOINT JOURNAL_DIR\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  rejoin::ServerOptions options;
  options.endpoint = argv[1];
  options.journal_dir = argv[2];
  options.server_id = "upper-1";

  rejoin::ServiceOptions upper;
  upper.name = "upper";
  upper.idempotent = true;
  upper.policy = rejoin::InDoubtPolicy::kReexecute;
  upper.handler = [](const rejoin::RequestView& request) {
    std::string out(request.payload);
    for (char& c : out) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return rejoin::HandlerReply{rejoin::ErrorCode::kOk, out};
  };

  auto server = rejoin::Server::Open(options, {upper});
  if (!server.ok()) {
    std::fprintf(stderr, "upper_server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  std::printf("upper_server: serving 'upper' at %s\n", argv[1]);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  return 0;
}
