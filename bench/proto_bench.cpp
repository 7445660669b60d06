// Micro-benchmarks of the header codec: encoding and decoding a REQUEST
// header with realistic ids, and PeekType, the broker's routing fast path.
// Target (PROTOCOL.md §8 sizes): a header decode well under 1 µs.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <span>
#include <string>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin {
namespace {

Request SampleRequest() {
  Request r;
  r.session = "c0a8012a5f3e9d71";  // 16 chars, as libclient generates them
  r.seq = 4242;
  r.service = "bank.transfer";
  r.completed_watermark = 4241;
  r.deadline_ms = 30000;
  r.flags = 0;
  return r;
}

void BM_HeaderEncodeRequest(benchmark::State& state) {
  const Message m = SampleRequest();
  std::string out;
  out.reserve(128);
  for (auto _ : state) {
    out.clear();
    EncodeHeader(m, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(out.size()));
}
BENCHMARK(BM_HeaderEncodeRequest);

void BM_HeaderDecodeRequest(benchmark::State& state) {
  const std::string frame = EncodeHeader(SampleRequest());
  const auto bytes = std::as_bytes(std::span(frame.data(), frame.size()));
  for (auto _ : state) {
    Result<Message> m = DecodeHeader(bytes, 2, /*payload_bytes=*/256);
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(frame.size()));
}
BENCHMARK(BM_HeaderDecodeRequest);

void BM_HeaderPeekType(benchmark::State& state) {
  const std::string frame = EncodeHeader(SampleRequest());
  const auto bytes = std::as_bytes(std::span(frame.data(), frame.size()));
  for (auto _ : state) {
    Result<MessageType> t = PeekType(bytes);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_HeaderPeekType);

}  // namespace
}  // namespace rejoin
