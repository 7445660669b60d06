// The baselines, in plain cppzmq and nothing else from rejoin: a ROUTER/ROUTER
// forwarding broker with seeded loss, a worker that executes everything it
// receives, and one client loop that is either zmq-raw (send, never resend)
// or lazy pirate (resend the same request id after a timer).
//
// Lazy pirate here keeps a window of requests on one DEALER and resends on
// that same socket. The guide's client closes and reopens its REQ socket
// because a REQ socket cannot send twice without a reply; a DEALER has no such
// lock-step, so reopening would only lose the replies still in flight. It
// retries without limit (the guide gives up after three tries) so every
// operation is eventually completed and its duplicates are counted.
//
// zmq-raw-curve: the same, with CurveZMQ on every link (the broker's sockets
// CURVE servers with no ZAP handler, so libzmq lets every peer key in).
#include "raw_roles.h"

#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "shm.h"

namespace rejoin::bench {
namespace {

constexpr char kReady[] = "R";

// One `name value` line of a key file the orchestrator wrote (roles.h).
std::string KeyLine(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == name) return value;
  }
  throw std::runtime_error("no " + name + " in " + path);
}

void CurveServer(zmq::socket_t& s, const RoleArgs& a) {
  if (a.curve_dir.empty()) return;
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey,
        KeyLine(CurveBrokerKey(a.curve_dir), "secret-key"));
}

void CurveClient(zmq::socket_t& s, const RoleArgs& a) {
  if (a.curve_dir.empty()) return;
  const std::string own = CurvePeerKey(a.curve_dir);
  s.set(zmq::sockopt::curve_serverkey,
        KeyLine(CurveBrokerPublic(a.curve_dir), "public-key"));
  s.set(zmq::sockopt::curve_publickey, KeyLine(own, "public-key"));
  s.set(zmq::sockopt::curve_secretkey, KeyLine(own, "secret-key"));
}

// Reads one multipart message without blocking; false when none waits.
bool TryRecvFrames(zmq::socket_t& s, std::vector<zmq::message_t>& frames) {
  frames.clear();
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return false;
  bool more = m.more();
  frames.push_back(std::move(m));
  while (more) {
    zmq::message_t next;
    (void)s.recv(next, zmq::recv_flags::none);
    more = next.more();
    frames.push_back(std::move(next));
  }
  return true;
}

// Sends frames as one message; false when the peer is gone or the queue is
// full (the message is dropped).
bool SendFrames(zmq::socket_t& s, std::vector<zmq::message_t>& frames,
                bool* unreachable) {
  if (unreachable != nullptr) *unreachable = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const bool last = i + 1 == frames.size();
    const auto flags =
        last ? zmq::send_flags::dontwait
             : zmq::send_flags::dontwait | zmq::send_flags::sndmore;
    try {
      if (!s.send(frames[i], flags)) return false;
    } catch (const zmq::error_t& e) {
      if (unreachable != nullptr && e.num() == EHOSTUNREACH) {
        *unreachable = true;
      }
      return false;
    }
  }
  return true;
}

std::int64_t PollTimeoutMs(std::int64_t ns) {
  if (ns <= 0) return 0;
  return std::max<std::int64_t>(1, (ns + 999999) / 1000000);
}

}  // namespace

int RunRawBroker(const RoleArgs& a) {
  zmq::context_t ctx(1);
  zmq::socket_t front(ctx, zmq::socket_type::router);
  zmq::socket_t back(ctx, zmq::socket_type::router);
  for (zmq::socket_t* s : {&front, &back}) {
    s->set(zmq::sockopt::router_mandatory, 1);
    s->set(zmq::sockopt::linger, 0);
    CurveServer(*s, a);
  }
  front.bind(a.endpoint);
  back.bind(a.back_endpoint);

  std::mt19937_64 rng(a.seed);
  std::bernoulli_distribution drop(a.loss);
  std::vector<std::string> workers;
  std::size_t next_worker = 0;
  std::vector<zmq::message_t> frames;
  std::vector<zmq::message_t> out;
  zmq::pollitem_t items[] = {{front.handle(), 0, ZMQ_POLLIN, 0},
                             {back.handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    zmq::poll(items, 2, std::chrono::milliseconds(100));
    // Workers first: answers free the pipeline.
    for (int n = 0; n < 512 && TryRecvFrames(back, frames); ++n) {
      if (frames.size() == 2) {  // [worker, "R"]
        std::string id = frames[0].to_string();
        if (std::find(workers.begin(), workers.end(), id) == workers.end()) {
          workers.push_back(std::move(id));
        }
        continue;
      }
      if (frames.size() != 4) continue;  // [worker, client, reqid, payload]
      if (a.loss > 0 && drop(rng)) continue;
      out.clear();
      for (std::size_t i = 1; i < 4; ++i) out.push_back(std::move(frames[i]));
      (void)SendFrames(front, out, nullptr);
    }
    for (int n = 0; n < 512 && TryRecvFrames(front, frames); ++n) {
      if (frames.size() != 3) continue;  // [client, reqid, payload]
      if (a.loss > 0 && drop(rng)) continue;
      // The request frames move into `out` once; a send refused because the
      // worker is gone fails on the first frame and leaves them intact, so
      // only the worker frame changes between tries.
      out.clear();
      out.emplace_back();
      for (zmq::message_t& f : frames) out.push_back(std::move(f));
      while (!workers.empty()) {
        next_worker %= workers.size();
        const std::string& w = workers[next_worker];
        out[0].rebuild(w.data(), w.size());
        bool unreachable = false;
        if (SendFrames(back, out, &unreachable)) {
          ++next_worker;
          break;
        }
        if (!unreachable) break;  // queue full: dropped like a loss
        workers.erase(workers.begin() +
                      static_cast<std::ptrdiff_t>(next_worker));
      }
    }
  }
}

int RunRawWorker(const RoleArgs& a) {
  ExecCounters exec(ExecPath(a.dir), a.clients, a.capacity, false);
  if (!exec.ok()) return 2;
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  CurveClient(s, a);
  s.connect(a.back_endpoint);
  std::vector<zmq::message_t> frames;
  std::int64_t next_ready = 0;
  zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    const std::int64_t now = NowNs();
    // Announced again and again so that a restarted broker learns of us.
    if (now >= next_ready) {
      (void)s.send(zmq::buffer(kReady, 1), zmq::send_flags::dontwait);
      next_ready = now + 100000000;
    }
    zmq::poll(items, 1, std::chrono::milliseconds(50));
    for (int n = 0; n < 512 && TryRecvFrames(s, frames); ++n) {
      if (frames.size() != 3) continue;  // [client, reqid, payload]
      exec.Execute(ReadTag(frames[2].data(), frames[2].size()));
      (void)SendFrames(s, frames, nullptr);
    }
  }
}

int RunRawClient(const RoleArgs& a) {
  ClientLog log(ClientLogPath(a.dir, a.index), a.capacity, false);
  Control control(ControlPath(a.dir), false);
  if (!log.ok() || !control.ok()) return 2;
  ClientHeader& h = log.header();
  Add(h.incarnations, std::uint64_t{1});
  const bool lazy = a.timeout_ms > 0;
  const std::int64_t timer_ns = (lazy ? a.timeout_ms : a.abandon_ms) * 1000000;

  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  CurveClient(s, a);
  s.connect(a.endpoint);
  zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}};
  std::vector<zmq::message_t> frames;

  auto send = [&](std::uint64_t tag) {
    const std::string payload = MakePayload(tag, a.size);
    std::vector<zmq::message_t> out;
    out.emplace_back(&tag, sizeof tag);
    out.emplace_back(payload.data(), payload.size());
    (void)SendFrames(s, out, nullptr);
  };

  if (!a.restart) {
    // Warm-up through the same lossy path: resend until one answer returns,
    // which also proves a worker is registered.
    bool answered = false;
    const std::int64_t give_up = NowNs() + 20000000000;
    while (!answered && NowNs() < give_up) {
      send(kWarmupTag);
      const std::int64_t wait_until = NowNs() + 200000000;
      while (!answered && NowNs() < wait_until) {
        zmq::poll(items, 1, std::chrono::milliseconds(20));
        while (TryRecvFrames(s, frames)) answered = true;
      }
    }
    if (!answered) return 3;
    Add(control.block().ready, std::uint64_t{1});
  }
  while (Load(control.block().go_ns) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const std::int64_t go = Load(control.block().go_ns);
  while (NowNs() < go) std::this_thread::yield();
  const std::int64_t end = a.requests == 0 ? Load(control.block().end_ns) : 0;
  const std::uint64_t limit =
      a.requests == 0 ? a.capacity : std::min(a.requests, a.capacity);

  struct Timer {
    std::uint64_t op;
    std::uint32_t send_no;
    std::int64_t deadline;
  };
  std::deque<Timer> timers;
  std::uint64_t next = Load(h.next_op);
  std::uint64_t in_flight = 0;
  std::int64_t drain_deadline = end == 0 ? 0 : end + a.drain_ms * 1000000;

  for (;;) {
    std::int64_t now = NowNs();
    const bool issuing = next < limit && (end == 0 || now < end);
    if (!issuing && drain_deadline == 0) {
      drain_deadline = now + a.drain_ms * 1000000;
    }
    while (issuing && in_flight < a.window && next < limit) {
      OpRecord& r = log.op(next);
      Store(r.send_ns, now);
      Store(r.sends, std::uint32_t{1});
      Store(r.state, static_cast<std::uint32_t>(OpState::kIssued));
      Store(h.next_op, next + 1);
      send(PackTag(a.index, next));
      timers.push_back({next, 1, now + timer_ns});
      ++in_flight;
      ++next;
    }
    if (!issuing && in_flight == 0) break;
    if (drain_deadline != 0 && now >= drain_deadline) break;

    std::int64_t wait_ns = 50000000;
    if (!timers.empty())
      wait_ns = std::min(wait_ns, timers.front().deadline - now);
    if (issuing && end != 0) wait_ns = std::min(wait_ns, end - now);
    if (drain_deadline != 0) wait_ns = std::min(wait_ns, drain_deadline - now);
    zmq::poll(items, 1, std::chrono::milliseconds(PollTimeoutMs(wait_ns)));

    now = NowNs();
    while (TryRecvFrames(s, frames)) {
      if (frames.size() != 2 || frames[0].size() != 8) continue;
      const std::uint64_t tag = ReadTag(frames[0].data(), 8);
      if (tag == kWarmupTag || TagClient(tag) != a.index) continue;
      const std::uint64_t op = TagOp(tag);
      if (op >= next) continue;
      OpRecord& r = log.op(op);
      const std::uint32_t state = Load(r.state);
      const bool first = log.MarkAnswered(op, now, end);
      if (first && state == static_cast<std::uint32_t>(OpState::kIssued)) {
        --in_flight;
      }
    }
    while (!timers.empty() && timers.front().deadline <= now) {
      const Timer t = timers.front();
      timers.pop_front();
      OpRecord& r = log.op(t.op);
      if (Load(r.done_ns) != 0 || Load(r.sends) != t.send_no ||
          Load(r.state) != static_cast<std::uint32_t>(OpState::kIssued)) {
        continue;
      }
      if (!lazy) {
        Store(r.state, static_cast<std::uint32_t>(OpState::kAbandoned));
        Add(h.abandoned, std::uint64_t{1});
        --in_flight;
        continue;
      }
      Store(r.sends, t.send_no + 1);
      Add(h.resends, std::uint64_t{1});
      send(PackTag(a.index, t.op));
      timers.push_back({t.op, t.send_no + 1, now + timer_ns});
    }
  }
  return 0;
}

int RunRawIdle(const RoleArgs& a) {
  Control control(ControlPath(a.dir), false);
  if (!control.ok()) return 2;
  const std::size_t n = a.idle_sessions;
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(n + 64));
  std::vector<zmq::socket_t> sockets;
  std::vector<zmq::pollitem_t> items;
  sockets.reserve(n);
  items.reserve(n);
  std::size_t answered = 0;
  const std::uint64_t tag = kWarmupTag;
  const std::string payload = MakePayload(tag, a.size);
  std::vector<zmq::message_t> frames;
  // One echo per connection proves it is set up end to end; then nothing
  // (zmq-raw has no heartbeat). Connections are paced as in the rejoin idle
  // role, so both brokers see the same arrival pattern.
  for (;;) {
    while (sockets.size() < n && sockets.size() - answered < 50) {
      sockets.emplace_back(ctx, zmq::socket_type::dealer);
      zmq::socket_t& s = sockets.back();
      s.set(zmq::sockopt::linger, 0);
      s.connect(a.endpoint);
      std::vector<zmq::message_t> out;
      out.emplace_back(&tag, sizeof tag);
      out.emplace_back(payload.data(), payload.size());
      (void)SendFrames(s, out, nullptr);
      items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
    }
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
    for (std::size_t i = 0; i < items.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      while (TryRecvFrames(sockets[i], frames)) {
        ++answered;
        Add(control.block().idle_welcomed, std::uint64_t{1});
      }
    }
  }
}

}  // namespace rejoin::bench
