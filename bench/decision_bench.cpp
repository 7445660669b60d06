// The breakpoint decision over a session of 1,000 operations in a realistic
// mix: most completed, some pending, some held executed or received.
#include <benchmark/benchmark.h>

#include "rejoin/proto/breakpoint.h"

namespace rejoin {
namespace {

void BM_DecideSession1000(benchmark::State& state) {
  constexpr Seq kOps = 1000;
  ClientVector client{"bench-session-01", 4, 77, kOps + 1, 1, {}, {}};
  ServerVector server{"bench-server-01", 3, 99, "bench-session-01", 1, {}};
  for (Seq seq = 1; seq <= kOps; ++seq) {
    switch (seq % 4) {
      case 0:
        client.pending.push_back(seq);
        break;
      case 1:
        client.pending.push_back(seq);
        server.held.push_back({seq, ServerOpState::kExecuted, 2});
        break;
      case 2:
        client.completed.push_back(seq);
        server.held.push_back({seq, ServerOpState::kExecuted, 3});
        break;
      default:
        client.pending.push_back(seq);
        server.held.push_back(
            {seq, ServerOpState::kReceived, seq % 8 == 3 ? 2u : 3u});
        break;
    }
  }
  DecisionContext ctx;
  ctx.policy = InDoubtPolicy::kResolveHook;
  for (auto _ : state) {
    SessionDecision d = Decide(client, server, ctx);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kOps));
}
BENCHMARK(BM_DecideSession1000);

}  // namespace
}  // namespace rejoin
