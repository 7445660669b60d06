// The rejoin roles: a server whose handler counts executions in the shared
// counter file, a client that keeps a window of CallAsync in flight and marks
// completions in its log, and a process of idle sessions.
//
// The benchmark service is not idempotent. Its resolve hook reads the same
// execution counter, the application's own record of what ran, which is how
// a real non-idempotent service settles an operation left in doubt by a
// crash: had it answered "re-execute", a kill between the side effect and the
// journal record would count as a duplicate execution.
#include "rejoin_roles.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "rejoin/client/client.h"
#include "rejoin/client/connection.h"
#include "rejoin/client/shared_journal.h"
#include "rejoin/server/server.h"
#include "rejoin/transport/wire.h"
#include "shm.h"

namespace rejoin::bench {
namespace {

constexpr char kService[] = "bench";
// Idle sessions connecting but not yet welcomed, per process.
constexpr std::size_t kIdlePending = 50;

Durability ParseDurability(const std::string& name) {
  if (name == "memory") return Durability::kMemory;
  if (name == "sync") return Durability::kSync;
  return Durability::kProcess;
}

void WaitForGo(const Control& control) {
  while (Load(control.block().go_ns) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const std::int64_t go = Load(control.block().go_ns);
  while (NowNs() < go) std::this_thread::yield();
}

// Slots of the window, shared with the callbacks on the client's I/O thread
// (RunCallbackWindow).
struct Window {
  std::mutex mutex;
  std::condition_variable changed;  // a refill failed, or in_flight fell
  std::uint64_t in_flight = 0;
};

// rejoin-curve: every process speaks CURVE with the case's keys, and its
// ids live in the principal's namespace (docs/SECURITY.md).
CurveOptions Curve(const RoleArgs& a) {
  if (a.curve_dir.empty()) return {};
  return CurveOptions{CurvePeerKey(a.curve_dir),
                      CurveBrokerPublic(a.curve_dir)};
}

std::string IdPrefix(const RoleArgs& a) {
  return a.curve_dir.empty() ? "" : std::string(kCurvePrincipal) + "/";
}

}  // namespace

int RunRejoinServer(const RoleArgs& a) {
  ExecCounters exec(ExecPath(a.dir), a.clients, a.capacity, false);
  if (!exec.ok()) return 2;
  ServerOptions o;
  o.endpoint = a.endpoint;
  o.server_id = IdPrefix(a) + "bench-s" + std::to_string(a.index);
  o.curve = Curve(a);
  o.durability = ParseDurability(a.durability);
  if (o.durability != Durability::kMemory) {
    o.journal_dir = a.dir + "/server-" + std::to_string(a.index);
  }
  o.concurrency = static_cast<std::uint32_t>(a.concurrency);
  o.inline_handlers = a.inline_handlers;

  ServiceOptions svc;
  svc.name = kService;
  svc.idempotent = false;
  svc.policy = InDoubtPolicy::kResolveHook;
  svc.handler = [&exec](const RequestView& r) {
    exec.Execute(ReadTag(r.payload.data(), r.payload.size()));
    return HandlerReply{ErrorCode::kOk, std::string(r.payload)};
  };
  svc.resolve = [&exec](const RequestView& r) -> std::optional<HandlerReply> {
    const std::uint64_t tag = ReadTag(r.payload.data(), r.payload.size());
    if (tag == kWarmupTag || exec.Count(TagClient(tag), TagOp(tag)) > 0) {
      return HandlerReply{ErrorCode::kOk, std::string(r.payload)};
    }
    return std::nullopt;
  };
  auto server = Server::Open(o, {svc});
  if (!server.ok()) {
    std::fprintf(stderr, "rejoin-server: %s\n",
                 server.status().ToString().c_str());
    return 3;
  }
  for (;;) ::pause();  // ends by signal
}

namespace {

// The sessions of one client process report here when they are done; the
// process exits once all have, with the worst exit code.
class Finish {
 public:
  void Report(int code) {
    std::lock_guard lock(mutex_);
    ++done_;
    code_ = std::max(code_, code);
    changed_.notify_all();
  }
  // Reports and never returns: the session's client, window and callbacks
  // stay alive until the process exits (its I/O thread may still call back).
  [[noreturn]] void ReportAndPark(int code) {
    Report(code);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  int Wait(std::uint64_t sessions) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return done_ >= sessions; });
    return code_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t done_ = 0;
  int code_ = 0;
};

// What the sessions of a client process share when it has several: one
// journal and one connection (with its I/O thread).
struct Group {
  std::shared_ptr<SharedJournal> journal;
  std::shared_ptr<ClientConnection> connection;
};

using OnAnswer = std::function<void(std::uint64_t, const Result<Reply>&)>;

// Reserves op `op` in the shared log and records its first send.
void MarkIssued(ClientLog& log, std::uint64_t op) {
  ClientHeader& h = log.header();
  OpRecord& rec = log.op(op);
  Store(rec.state, static_cast<std::uint32_t>(OpState::kReserved));
  Store(h.next_op, op + 1);
  Store(rec.send_ns, NowNs());
  Store(rec.sends, std::uint32_t{1});
}

// The window kept full by completion callbacks, as a pipelined application
// does: the next call leaves on the I/O thread's next turn with no thread
// hand-off. This thread fills the window at the start, retries calls the
// client refused, and waits for the end and the drain.
void RunCallbackWindow(const RoleArgs& a, std::uint64_t index, Client& client,
                       ClientLog& log, std::int64_t end, std::uint64_t limit,
                       const OnAnswer& on_answer) {
  ClientHeader& h = log.header();
  Window window;
  std::uint64_t next = Load(h.next_op);
  bool refused = false;  // the client refused the last call: retry later
  // Issues op `next` if the window, the op budget and the time allow; the
  // caller holds window.mutex.
  std::function<bool()> issue;
  auto done = [&window, &on_answer, &issue](std::uint64_t op,
                                            const Result<Reply>& r) {
    on_answer(op, r);
    std::lock_guard lock(window.mutex);
    --window.in_flight;
    if (!issue()) window.changed.notify_all();
  };
  issue = [&]() -> bool {
    if (refused || window.in_flight >= a.window || next >= limit ||
        (end != 0 && NowNs() >= end)) {
      return false;
    }
    const std::uint64_t op = next;
    MarkIssued(log, op);
    OpRecord& rec = log.op(op);
    auto issued =
        client.CallAsync(kService, MakePayload(PackTag(index, op), a.size),
                         [&done, op](const Result<Reply>& r) { done(op, r); });
    if (!issued.ok()) {
      // Not accepted (leftovers of a previous process fill the window): the
      // main thread tries the same op again shortly.
      Store(rec.state, static_cast<std::uint32_t>(OpState::kNone));
      Store(h.next_op, op);
      refused = true;
      return false;
    }
    Store(rec.state, static_cast<std::uint32_t>(OpState::kIssued));
    ++window.in_flight;
    ++next;
    return true;
  };
  {
    std::unique_lock lock(window.mutex);
    for (;;) {
      refused = false;
      while (issue()) {
      }
      if (next >= limit || (end != 0 && NowNs() >= end)) break;
      if (refused) {
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        lock.lock();
        continue;
      }
      // Callbacks keep the window full; they wake this thread when a call
      // was refused or the run is over.
      const auto wake = [&] { return refused || window.in_flight < a.window; };
      if (end != 0) {
        window.changed.wait_until(lock,
                                  std::chrono::steady_clock::time_point(
                                      std::chrono::nanoseconds(end)),
                                  wake);
      } else {
        window.changed.wait(lock, wake);
      }
    }
  }
  const std::int64_t drain_end =
      (end != 0 ? std::max(end, NowNs()) : NowNs()) + a.drain_ms * 1000000;
  std::unique_lock lock(window.mutex);
  window.changed.wait_until(lock,
                            std::chrono::steady_clock::time_point(
                                std::chrono::nanoseconds(drain_end)),
                            [&] { return window.in_flight == 0; });
}

// rejoin-call: `window` application threads, each calling the blocking
// Client::Call in a loop, as a synchronous application does. Each call
// crosses from the calling thread to the library's I/O thread and its
// outcome back, the hand-off the callback window does not pay.
void RunBlockingCalls(const RoleArgs& a, std::uint64_t index, Client& client,
                      ClientLog& log, std::int64_t end, std::uint64_t limit,
                      const OnAnswer& on_answer) {
  std::mutex mutex;
  std::uint64_t next = Load(log.header().next_op);
  // Ends once the run is over and every call returned; a call still
  // unanswered when the drain ends returns kDeadlineExceeded.
  auto caller = [&] {
    for (;;) {
      std::uint64_t op = 0;
      {
        std::lock_guard lock(mutex);
        if (next >= limit || (end != 0 && NowNs() >= end)) return;
        op = next++;
        MarkIssued(log, op);
        Store(log.op(op).state, static_cast<std::uint32_t>(OpState::kIssued));
      }
      auto deadline = std::chrono::milliseconds(a.deadline_ms);
      if (end != 0) {
        const std::int64_t left_ms =
            (end + a.drain_ms * 1000000 - NowNs()) / 1000000;
        deadline = std::clamp(std::chrono::milliseconds(left_ms),
                              std::chrono::milliseconds(1), deadline);
      }
      on_answer(op,
                client.Call(kService, MakePayload(PackTag(index, op), a.size),
                            deadline));
    }
  };
  std::vector<std::thread> callers;
  for (std::uint64_t i = 0; i < std::max<std::uint64_t>(a.window, 1); ++i) {
    callers.emplace_back(caller);
  }
  for (std::thread& t : callers) t.join();
}

// One session of a client process: session `index` of the case, with a
// journal and connection of its own, or those of its group.
void RunSession(const RoleArgs& a, std::uint64_t index, const Group& group,
                Finish& finish) {
  ClientLog log(ClientLogPath(a.dir, index), a.capacity, false);
  Control control(ControlPath(a.dir), false);
  if (!log.ok() || !control.ok()) return finish.Report(2);
  ClientHeader& h = log.header();
  Add(h.incarnations, std::uint64_t{1});

  ClientOptions o;
  o.endpoint = a.endpoint;
  o.session_id = IdPrefix(a) + "bench-c" + std::to_string(index);
  o.curve = Curve(a);
  o.durability = ParseDurability(a.durability);
  o.connection = group.connection;
  if (group.journal != nullptr) {
    o.shared_journal = group.journal;
  } else if (o.durability != Durability::kMemory) {
    o.journal_dir = a.dir + "/client-" + std::to_string(index);
  }
  o.max_outstanding =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(a.window, 1));
  o.default_deadline = std::chrono::milliseconds(a.deadline_ms);
  auto opened = Client::Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "rejoin-client: %s\n",
                 opened.status().ToString().c_str());
    return finish.Report(3);
  }
  Client& client = **opened;
  // Resends as the library reports them: informational, unlike the counts
  // of lost and duplicate operations, which come from the shared files.
  client.SetRecoveryCallback([&h](const RecoveryEvent& e) {
    if (e.kind == RecoveryEventKind::kRequestResent) {
      Add(h.resends, std::uint64_t{1});
    }
  });

  if (!a.restart) {
    auto warm = client.Call(kService, MakePayload(kWarmupTag, a.size),
                            std::chrono::milliseconds(20000));
    if (!warm.ok()) {
      std::fprintf(stderr, "rejoin-client: warm-up: %s\n",
                   warm.status().ToString().c_str());
      finish.ReportAndPark(3);
    }
    Add(control.block().ready, std::uint64_t{1});
  }
  WaitForGo(control);
  const std::int64_t end = a.requests == 0 ? Load(control.block().end_ns) : 0;
  const std::uint64_t limit =
      a.requests == 0 ? a.capacity : std::min(a.requests, a.capacity);

  auto on_answer = [&log, &h, end](std::uint64_t op, const Result<Reply>& r) {
    if (!r.ok()) {  // deadline or shutdown: the operation is not answered
      Add(h.errors, std::uint64_t{1});
      return;
    }
    if (r->status == ErrorCode::kOk) {
      log.MarkAnswered(op, NowNs(), end);
    } else {
      Store(log.op(op).state, static_cast<std::uint32_t>(OpState::kFailed));
      Add(h.errors, std::uint64_t{1});
    }
  };

  // A restarted session first collects what its previous process left in
  // the journal, beside the new calls.
  // Each outcome is recorded as it arrives (CollectAsync), so that the
  // first recovered operation is not stamped behind a slower one.
  std::atomic<std::size_t> uncollected{0};
  if (a.restart) {
    // Listed before this process issues anything: a list taken later would
    // also hold this process's own calls, which are forgotten once their
    // caller has them, so collecting one of those could fail.
    std::vector<OperationInfo> inherited = client.ListOperations();
    uncollected = inherited.size();
    if (inherited.empty()) Store(h.collect_done, std::uint64_t{1});
    const auto deadline = std::chrono::milliseconds(a.deadline_ms);
    for (const OperationInfo& info : inherited) {
      const Seq seq = info.seq;
      auto collected = [&, seq](const Result<Reply>& r) {
        if (r.ok()) {
          const std::uint64_t tag =
              ReadTag(r->payload.data(), r->payload.size());
          if (tag != kWarmupTag && TagClient(tag) == index &&
              TagOp(tag) < log.capacity()) {
            OpRecord& rec = log.op(TagOp(tag));
            if (Load(rec.state) ==
                static_cast<std::uint32_t>(OpState::kReserved)) {
              Store(rec.state, static_cast<std::uint32_t>(OpState::kIssued));
            }
            if (Load(rec.done_ns) == 0) on_answer(TagOp(tag), r);
          }
          (void)client.Forget(seq);
        } else {
          Add(h.collect_failures, std::uint64_t{1});
          std::fprintf(stderr, "rejoin-client: collecting seq %llu: %s\n",
                       static_cast<unsigned long long>(seq),
                       r.status().ToString().c_str());
        }
        if (uncollected.fetch_sub(1) == 1) {
          Store(h.collect_done, std::uint64_t{1});
        }
      };
      if (Status s = client.CollectAsync(seq, collected, deadline); !s.ok()) {
        collected(s);
      }
    }
  }

  if (a.blocking) {
    RunBlockingCalls(a, index, client, log, end, limit, on_answer);
  } else {
    RunCallbackWindow(a, index, client, log, end, limit, on_answer);
  }
  const std::int64_t drain_end =
      (end != 0 ? std::max(end, NowNs()) : NowNs()) + a.drain_ms * 1000000;
  while (uncollected.load() > 0 && NowNs() < drain_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  finish.ReportAndPark(0);
}

}  // namespace

int RunRejoinClient(const RoleArgs& a) {
  const std::uint64_t per = std::max<std::uint64_t>(a.sessions_per_process, 1);
  const std::uint64_t first = a.index * per;
  if (first >= a.clients) return 2;
  const std::uint64_t count = std::min(per, a.clients - first);
  Group group;
  if (per > 1) {
    auto journal =
        SharedJournal::Open(a.dir + "/client-group-" + std::to_string(a.index),
                            ParseDurability(a.durability),
                            "bench-group-" + std::to_string(a.index));
    auto connection = ClientConnection::Open(a.endpoint, Curve(a));
    if (!journal.ok() || !connection.ok()) {
      std::fprintf(stderr, "rejoin-client: %s\n",
                   (journal.ok() ? connection.status() : journal.status())
                       .ToString()
                       .c_str());
      return 3;
    }
    group.journal = std::move(journal).value();
    group.connection = std::move(connection).value();
  }
  Finish finish;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::thread([&a, &group, &finish, index = first + i] {
      RunSession(a, index, group, finish);
    }).detach();
  }
  const int code = finish.Wait(count);
  if (group.journal != nullptr) {
    ClientLog log(ClientLogPath(a.dir, first), a.capacity, false);
    if (log.ok()) {
      Add(log.header().journal_commits, group.journal->commits());
      Add(log.header().journal_records, group.journal->committed_records());
    }
  }
  std::fflush(nullptr);
  // Skips the destructors on purpose: the journal is not needed after the
  // case, and callbacks may still be running on the I/O threads.
  ::_exit(code);
}

namespace {

// Idle sessions opened with the library, all on one ClientConnection: what
// an application with many sessions in a process does. They stay welcomed
// (the connection heartbeats) until killed.
int RunIdleClients(const RoleArgs& a) {
  Control control(ControlPath(a.dir), false);
  if (!control.ok()) return 2;
  std::vector<std::shared_ptr<ClientConnection>> connections;  // one
  std::vector<std::unique_ptr<Client>> clients;
  clients.reserve(a.idle_sessions);
  for (std::uint64_t i = 0; i < a.idle_sessions; ++i) {
    if (connections.empty()) {
      auto c = ClientConnection::Open(a.endpoint);
      if (!c.ok()) {
        std::fprintf(stderr, "idle: %s\n", c.status().ToString().c_str());
        return 3;
      }
      connections.push_back(std::move(c).value());
    }
    ClientOptions o;
    o.connection = connections.back();
    o.session_id = "idle-" + std::to_string(a.index) + "-" + std::to_string(i);
    o.durability = Durability::kMemory;
    auto client = Client::Open(o);
    if (!client.ok()) {
      std::fprintf(stderr, "idle: %s\n", client.status().ToString().c_str());
      return 3;
    }
    clients.push_back(std::move(client).value());
  }
  std::vector<bool> counted(clients.size(), false);
  for (std::size_t left = clients.size(); left > 0;) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      if (!counted[i] && clients[i]->stats().welcomes > 0) {
        counted[i] = true;
        --left;
        Add(control.block().idle_welcomed, std::uint64_t{1});
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (;;) ::pause();  // ends by signal
}

}  // namespace

int RunIdleSessions(const RoleArgs& a) {
  if (a.sessions_per_process > 1) {
    return RunIdleClients(a);
  }
  // One connection per session, each a raw DEALER speaking the protocol
  // (thousands of Clients with a thread each would measure the threads).
  Control control(ControlPath(a.dir), false);
  if (!control.ok()) return 2;
  const std::size_t n = a.idle_sessions;
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(n + 64));
  std::vector<zmq::socket_t> sockets;
  std::vector<transport::Reader> readers;
  std::vector<zmq::pollitem_t> items;
  sockets.reserve(n);
  readers.reserve(n);
  items.reserve(n);
  std::vector<bool> welcomed(n, false);
  std::size_t welcomed_here = 0;
  std::mt19937_64 rng(a.seed);
  Epoch epoch = 0;
  std::int64_t heartbeat_ns = 1000000000;
  std::int64_t next_beat = NowNs() + heartbeat_ns;
  transport::Frames frames;
  std::vector<Hello> hellos;
  std::vector<std::int64_t> hello_ns;
  auto MakeHello = [&](std::size_t i) {
    Hello hello;
    hello.role = Role::kClient;
    hello.id = "idle-" + std::to_string(a.index) + "-" + std::to_string(i);
    hello.incarnation = 1;
    hello.journal_id = rng() | 1;
    return hello;
  };
  for (;;) {
    // Sessions arrive a few at a time: a burst of thousands of connects
    // would overflow the listener's accept backlog and stall in TCP
    // retransmits, which measures the kernel, not the broker.
    while (sockets.size() < n &&
           sockets.size() - welcomed_here < kIdlePending) {
      const std::size_t i = sockets.size();
      sockets.emplace_back(ctx, zmq::socket_type::dealer);
      readers.emplace_back(/*routed=*/false);
      zmq::socket_t& s = sockets.back();
      s.set(zmq::sockopt::linger, 0);
      s.connect(a.endpoint);
      hellos.push_back(MakeHello(i));
      (void)transport::Send(s, "", Message(hellos.back()));
      hello_ns.push_back(NowNs());
      items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
    }
    // A HELLO that found no connection (or no answer) is said again.
    const std::int64_t retry_before = NowNs() - 1000000000;
    for (std::size_t i = 0; i < sockets.size(); ++i) {
      if (!welcomed[i] && hello_ns[i] < retry_before) {
        (void)transport::Send(sockets[i], "", Message(hellos[i]));
        hello_ns[i] = NowNs();
      }
    }
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
    for (std::size_t i = 0; i < items.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      while (readers[i].Next(sockets[i], frames) ==
             transport::ReadResult::kMessage) {
        Result<Message> m = transport::Decode(frames);
        if (!m.ok()) continue;
        if (const auto* w = std::get_if<Welcome>(&m.value())) {
          epoch = w->epoch;
          if (w->heartbeat_ms > 0) {
            heartbeat_ns = std::int64_t{w->heartbeat_ms} * 1000000;
          }
          if (!welcomed[i]) {
            welcomed[i] = true;
            ++welcomed_here;
            Add(control.block().idle_welcomed, std::uint64_t{1});
          }
        }
      }
    }
    const std::int64_t now = NowNs();
    if (now >= next_beat) {
      for (zmq::socket_t& s : sockets) {
        (void)transport::Send(s, "", Message(Heartbeat{epoch}));
      }
      next_beat = now + heartbeat_ns / 2;
    }
  }
}

}  // namespace rejoin::bench
