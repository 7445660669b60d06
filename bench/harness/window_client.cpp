// The shared window loop of the NATS and MQTT clients.
#include "window_client.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "shm.h"

namespace rejoin::bench {

int RunWindowClient(const RoleArgs& a, WindowTransport& t) {
  ClientLog log(ClientLogPath(a.dir, a.index), a.capacity, false);
  Control control(ControlPath(a.dir), false);
  if (!log.ok() || !control.ok()) return 2;
  ClientHeader& h = log.header();
  Add(h.incarnations, std::uint64_t{1});

  // Warm-up: a request through the whole path until one is answered, which
  // also proves a server has subscribed.
  bool answered = false;
  const std::int64_t give_up = NowNs() + 20000000000;
  const auto warm = [&](std::uint64_t) { answered = true; };
  while (!answered && NowNs() < give_up) {
    if (!t.Send(MakePayload(kWarmupTag, a.size))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::int64_t wait_until = NowNs() + 200000000;
    while (!answered && NowNs() < wait_until) {
      if (!t.Poll(20, warm)) return 3;
    }
  }
  if (!answered) {
    std::fprintf(stderr, "client %llu: warm-up never answered\n",
                 static_cast<unsigned long long>(a.index));
    return 3;
  }
  Add(control.block().ready, std::uint64_t{1});
  while (Load(control.block().go_ns) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const std::int64_t go = Load(control.block().go_ns);
  while (NowNs() < go) std::this_thread::yield();
  const std::int64_t end = a.requests == 0 ? Load(control.block().end_ns) : 0;
  const std::uint64_t limit =
      a.requests == 0 ? a.capacity : std::min(a.requests, a.capacity);

  std::uint64_t next = 0;
  std::uint64_t in_flight = 0;
  std::int64_t drain_deadline = 0;
  std::int64_t now = NowNs();
  const auto on_answer = [&](std::uint64_t tag) {
    if (tag == kWarmupTag || TagClient(tag) != a.index) return;
    const std::uint64_t op = TagOp(tag);
    if (op >= next) return;
    if (log.MarkAnswered(op, now, end)) --in_flight;
  };
  for (;;) {
    now = NowNs();
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
      if (!t.Send(MakePayload(PackTag(a.index, next), a.size))) {
        Add(h.errors, std::uint64_t{1});
        Store(r.state, static_cast<std::uint32_t>(OpState::kFailed));
      } else {
        ++in_flight;
      }
      ++next;
    }
    if (!issuing && in_flight == 0) break;
    if (drain_deadline != 0 && now >= drain_deadline) break;
    std::int64_t wait_ns = 50000000;
    if (issuing && end != 0) wait_ns = std::min(wait_ns, end - now);
    if (drain_deadline != 0) wait_ns = std::min(wait_ns, drain_deadline - now);
    const int wait_ms = static_cast<int>(
        std::max<std::int64_t>(1, (wait_ns + 999999) / 1000000));
    if (!t.Poll(wait_ms, [&](std::uint64_t tag) {
          now = NowNs();
          on_answer(tag);
        })) {
      std::fprintf(stderr, "client %llu: connection lost\n",
                   static_cast<unsigned long long>(a.index));
      return 3;
    }
  }
  return 0;
}

}  // namespace rejoin::bench
