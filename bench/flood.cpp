// rejoin-flood: the six table floods of FLOWS.md §10 against a real
// rejoin-broker with its default limits. For each flood a fresh broker is
// started; a canary client calls a canary server through it every 10 ms
// while the flood runs and for a second after, and the flood prints the
// canary's worst per-call latency, its failed calls, the broker's peak RSS
// (VmHWM) and what the flooder was told. Not a test: it prints figures.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "harness/spawn.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/codec.h"
#include "rejoin/server/server.h"
#include "rejoin/transport/wire.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using rejoin::Message;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// A hand-made endpoint: sends what it is told, counts what comes back.
class Raw {
 public:
  Raw(zmq::context_t& ctx, const std::string& ep)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndhwm, 0);
    socket_.set(zmq::sockopt::rcvhwm, 0);
    socket_.connect(ep);
  }
  void Send(const Message& m, const std::string* payload = nullptr) {
    const std::string h = rejoin::EncodeHeader(m);
    if (payload == nullptr) {
      socket_.send(zmq::buffer(h), zmq::send_flags::none);
    } else {
      socket_.send(zmq::buffer(h), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(*payload), zmq::send_flags::none);
    }
  }
  // Reads what is waiting (up to `wait` for the first); calls `on` for each.
  void Drain(std::chrono::milliseconds wait,
             const std::function<void(const Message&)>& on = {}) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    rejoin::transport::Frames frames;
    while (reader_.Next(socket_, frames) ==
           rejoin::transport::ReadResult::kMessage) {
      auto m = rejoin::transport::Decode(frames);
      if (!m.ok()) continue;
      if (const auto* e = std::get_if<rejoin::Error>(&*m)) {
        if (e->code == rejoin::ErrorCode::kLimitExceeded) ++limit_exceeded;
      }
      if (on) on(*m);
    }
  }
  std::uint64_t limit_exceeded = 0;

 private:
  zmq::socket_t socket_;
  rejoin::transport::Reader reader_{/*routed=*/false};
};

struct Result {
  double worst_ms = 0;
  int calls = 0;
  int failed = 0;
  long peak_rss_kib = 0;
  std::uint64_t refusals = 0;
  double flood_s = 0;
};

class Flood {
 public:
  Flood(std::string broker, std::string dir, int nofile)
      : broker_(std::move(broker)), dir_(std::move(dir)) {
    endpoint_ = "tcp://127.0.0.1:" + std::to_string(FreePort());
    std::vector<std::string> argv = {broker_, "--endpoint", endpoint_,
                                     "--log-level", "warn"};
    if (nofile > 0) {
      // The descriptor flood: a broker whose hard limit is `nofile`.
      std::string cmd = "ulimit -n " + std::to_string(nofile) + " && exec";
      for (const std::string& a : argv) cmd += " '" + a + "'";
      argv = {"/bin/sh", "-c", cmd};
    }
    pid_ = rejoin::bench::Spawn(argv, dir_ + "/broker.log");
    std::this_thread::sleep_for(300ms);
    ctx_.set(zmq::ctxopt::max_sockets, 8192);
    rejoin::ServerOptions so;
    so.endpoint = endpoint_;
    so.server_id = "canary-server";
    so.durability = rejoin::Durability::kMemory;
    rejoin::ServiceOptions svc;
    svc.name = "canary";
    svc.handler = [](const rejoin::RequestView& r) {
      return rejoin::HandlerReply{rejoin::ErrorCode::kOk,
                                  std::string(r.payload)};
    };
    auto s = rejoin::Server::Open(so, {svc});
    if (s.ok()) server_ = std::move(*s);
  }
  ~Flood() {
    server_.reset();
    rejoin::bench::ProcessUsage u;
    rejoin::bench::KillAndReap(pid_, u);
  }
  const std::string& endpoint() const { return endpoint_; }
  zmq::context_t& ctx() { return ctx_; }

  // Runs `flood` with the canary calling beside it, then a second more.
  // `setup` (optional) runs before the canary starts: state the flood needs
  // that is not the flood itself.
  Result Run(const std::string& name,
             const std::function<std::uint64_t()>& flood,
             const std::function<void()>& setup = {}) {
    if (setup) setup();
    Result r;
    std::atomic<bool> stop{false};
    std::thread canary([&] {
      rejoin::ClientOptions o;
      o.endpoint = endpoint_;
      o.session_id = "canary-" + name;
      o.journal_dir = dir_ + "/canary-" + name;
      o.default_deadline = 5s;
      auto c = rejoin::Client::Open(o);
      if (!c.ok()) {
        r.failed = -1;
        return;
      }
      while (!stop.load()) {
        const auto t0 = Clock::now();
        auto reply = (*c)->Call("canary", "ping");
        const double ms =
            std::chrono::duration<double, std::milli>(Clock::now() - t0)
                .count();
        ++r.calls;
        if (!reply.ok() || reply->status != rejoin::ErrorCode::kOk) {
          ++r.failed;
        }
        r.worst_ms = std::max(r.worst_ms, ms);
        std::this_thread::sleep_for(10ms);
      }
    });
    std::this_thread::sleep_for(200ms);  // the canary is welcomed first
    const auto t0 = Clock::now();
    r.refusals = flood();
    r.flood_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(1s);
    stop.store(true);
    canary.join();
    r.peak_rss_kib = rejoin::bench::ReadStatusKib(pid_, "VmHWM");
    std::printf(
        "%-22s flood %6.1f s  canary calls %5d failed %3d worst %8.1f ms  "
        "broker peak RSS %7.1f MiB  flooder refused %llu\n",
        name.c_str(), r.flood_s, r.calls, r.failed, r.worst_ms,
        static_cast<double>(r.peak_rss_kib) / 1024.0,
        static_cast<unsigned long long>(r.refusals));
    std::fflush(stdout);
    return r;
  }

 private:
  std::string broker_, dir_, endpoint_;
  pid_t pid_ = -1;
  zmq::context_t ctx_;
  std::unique_ptr<rejoin::Server> server_;
};

rejoin::Hello ClientHello(const std::string& id) {
  return rejoin::Hello{rejoin::Role::kClient, id, 1, 42, 0, {}};
}
rejoin::Hello ServerHello(const std::string& id, const std::string& service,
                          std::uint32_t credit) {
  return rejoin::Hello{rejoin::Role::kServer,
                       id,
                       1,
                       99,
                       0,
                       {rejoin::ServiceSpec{service, credit}}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string broker = REJOIN_FLOOD_BROKER_PATH;
  std::string only;
  CLI::App app{"rejoin-flood: table floods against a real rejoin-broker"};
  app.add_option("--broker", broker)->capture_default_str();
  app.add_option("--only", only, "run the one flood of this name");
  CLI11_PARSE(app, argc, argv);
  rejoin::bench::InstallChildCleanup();
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  char tmpl[] = "/tmp/rejoin-flood-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  auto want = [&](const char* n) { return only.empty() || only == n; };

  if (want("hello")) {  // 100,000 HELLOs with random ids, one connection
    Flood f(broker, dir, 0);
    f.Run("hello", [&] {
      Raw raw(f.ctx(), f.endpoint());
      std::mt19937_64 rng(1);
      for (int i = 0; i < 100000; ++i) {
        raw.Send(ClientHello("h" + std::to_string(rng())));
        if (i % 1000 == 0) raw.Drain(0ms);
      }
      raw.Drain(500ms);
      return raw.limit_exceeded;
    });
  }
  if (want("state_exchange")) {  // one server reports 150,000 sessions
    Flood f(broker, dir, 0);
    f.Run("state_exchange", [&] {
      Raw raw(f.ctx(), f.endpoint());
      raw.Send(rejoin::Hello{rejoin::Role::kServer,
                             "liar",
                             2,
                             77,
                             5,
                             {rejoin::ServiceSpec{"x", 1}}});
      raw.Drain(200ms);
      for (int batch = 0; batch < 150; ++batch) {
        rejoin::StateExchange se;
        se.role = rejoin::Role::kServer;
        se.last = batch == 149;
        for (int i = 0; i < 1000; ++i) {
          se.servers.push_back(rejoin::ServerVector{
              "liar",
              2,
              77,
              "g" + std::to_string(batch * 1000 + i),
              1,
              {rejoin::HeldOp{1, rejoin::ServerOpState::kExecuted, 1}}});
        }
        raw.Send(se);
        raw.Drain(0ms);
        raw.Send(rejoin::Heartbeat{0});
      }
      raw.Drain(500ms);
      return raw.limit_exceeded;
    });
  }
  if (want("never_ack")) {  // 2,000 answers of 256 KiB never acknowledged
    Flood f(broker, dir, 0);
    f.Run("never_ack", [&] {
      Raw server(f.ctx(), f.endpoint());
      server.Send(ServerHello("big-server", "big", 64));
      server.Drain(200ms);
      const std::string big(256 * 1024, 'b');
      std::uint64_t refused = 0;
      {
        Raw hog(f.ctx(), f.endpoint());
        hog.Send(ClientHello("hog"));
        for (rejoin::Seq seq = 1; seq <= 2000; ++seq) {
          hog.Send(rejoin::Request{"hog", seq, "big", 1, 0, 0}, &big);
          server.Drain(0ms, [&](const Message& m) {
            if (const auto* q = std::get_if<rejoin::Request>(&m)) {
              server.Send(
                  rejoin::Response{q->session, q->seq, rejoin::ErrorCode::kOk},
                  &big);
            }
          });
          hog.Drain(0ms);
        }
        for (int i = 0; i < 20; ++i) {
          server.Drain(20ms, [&](const Message& m) {
            if (const auto* q = std::get_if<rejoin::Request>(&m)) {
              server.Send(
                  rejoin::Response{q->session, q->seq, rejoin::ErrorCode::kOk},
                  &big);
            }
          });
          hog.Drain(0ms);
        }
        refused = hog.limit_exceeded;
        hog.Send(rejoin::Goodbye{"", ""});
      }
      return refused;
    });
  }
  if (want("queue")) {  // 1,500 x 512 KiB for a server that never answers
    Flood f(broker, dir, 0);
    f.Run("queue", [&] {
      Raw server(f.ctx(), f.endpoint());
      server.Send(ServerHello("mute", "mute", 1));
      server.Drain(200ms);
      Raw flooder(f.ctx(), f.endpoint());
      const std::string chunk(512 * 1024, 'q');
      for (int i = 0; i < 1500; ++i) {
        const std::string sid =
            "q" + std::to_string(i % 1000) + "-" + std::to_string(i / 1000);
        flooder.Send(ClientHello(sid));
        flooder.Send(rejoin::Request{sid, 1, "mute", 1, 0, 0}, &chunk);
        if (i % 50 == 0) {
          flooder.Drain(0ms);
          server.Drain(0ms);
          server.Send(rejoin::Heartbeat{0});
        }
      }
      flooder.Drain(500ms);
      return flooder.limit_exceeded;
    });
  }
  if (want("server_hello")) {  // 3,000 server HELLOs, 90 k tracked ops
    Flood f(broker, dir, 0);
    Raw server(f.ctx(), f.endpoint());
    std::vector<std::unique_ptr<Raw>> clients;
    auto setup = [&] {
      server.Send(ServerHello("holder", "hold", 100000));
      server.Drain(200ms);
      const std::string p = "x";
      for (int c = 0; c < 30; ++c) {
        clients.push_back(std::make_unique<Raw>(f.ctx(), f.endpoint()));
        const std::string sid = "t" + std::to_string(c);
        clients.back()->Send(ClientHello(sid));
        for (rejoin::Seq seq = 1; seq <= 3000; ++seq) {
          clients.back()->Send(rejoin::Request{sid, seq, "hold", 1, 0, 0}, &p);
        }
        clients.back()->Drain(0ms);
        server.Drain(0ms);
        server.Send(rejoin::Heartbeat{0});
      }
      server.Drain(500ms);
      server.Send(rejoin::Heartbeat{0});
    };
    f.Run(
        "server_hello",
        [&] {
          // Each from a connection of its own, for a server id that holds
          // nothing: admitting it must not look at the 90 k operations.
          std::uint64_t refused = 0;
          for (int i = 0; i < 3000; ++i) {
            Raw other(f.ctx(), f.endpoint());
            other.Send(ServerHello("other-" + std::to_string(i), "hold", 1));
            other.Drain(100ms);
            refused += other.limit_exceeded;
            other.Send(rejoin::Goodbye{"", ""});
            if (i % 20 == 0) {
              server.Send(rejoin::Heartbeat{0});
              server.Drain(0ms);
            }
          }
          return refused;
        },
        setup);
  }
  if (want("idle_connections")) {  // 1,014 idle connections, 1,024 fds
    Flood f(broker, dir, 1024);
    std::vector<std::unique_ptr<Raw>> idle;
    f.Run("idle_connections", [&] {
      for (int i = 0; i < 1014; ++i) {
        idle.push_back(std::make_unique<Raw>(f.ctx(), f.endpoint()));
      }
      std::this_thread::sleep_for(2s);
      // A client that comes now, with the idle connections still open.
      rejoin::ClientOptions o;
      o.endpoint = f.endpoint();
      o.session_id = "newcomer";
      o.journal_dir = dir + "/newcomer";
      o.default_deadline = 5s;
      const auto t0 = Clock::now();
      auto c = rejoin::Client::Open(o);
      bool ok = false;
      if (c.ok()) {
        auto reply = (*c)->Call("canary", "new");
        ok = reply.ok() && reply->status == rejoin::ErrorCode::kOk;
      }
      std::printf(
          "idle_connections: a new client's first call %s after %.1f ms\n",
          ok ? "succeeded" : "FAILED",
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      return std::uint64_t{0};
    });
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
