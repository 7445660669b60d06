// Fuzz target: one ZeroMQ message as a peer sends it, through the transport's
// Reader (batches of header and payload frames, pack frames) and Decode, over
// a real inproc socket pair. The input format is fuzz_frames.h's. Properties
// beyond "no crash":
// - every message handed out decodes or is refused with a Status, and what
//   TakeHeader/TakePayload return equals the bytes handed out;
// - forwarding is lossless: the messages that decoded, added to a Batch as
//   the broker forwards them (AddEncoded) and read back, come out as the
//   same messages in the same order with no frame dropped, and so do they
//   when re-encoded (Batch::Add).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "fuzz_check.h"
#include "fuzz_frames.h"
#include "rejoin/proto/codec.h"
#include "rejoin/transport/wire.h"

namespace rejoin::fuzz {
namespace {

struct Sockets {
  zmq::context_t context{0};
  zmq::socket_t in{context, zmq::socket_type::pair};
  zmq::socket_t out{context, zmq::socket_type::pair};
  Sockets() {
    in.bind("inproc://batch-fuzz");
    out.connect("inproc://batch-fuzz");
  }
};

Sockets& Pair() {
  static Sockets* sockets = new Sockets();  // lives until exit
  return *sockets;
}

struct Accepted {
  Message message;
  std::string header;
  std::string payload;
};

// Reads every message of the one ZeroMQ message waiting on `socket`.
std::vector<Accepted> ReadAll(zmq::socket_t& socket, bool routed,
                              std::size_t* refused, std::uint64_t* dropped) {
  std::vector<Accepted> accepted;
  transport::Reader reader(routed);
  transport::Frames frames;
  transport::ReadResult r;
  while ((r = reader.Next(socket, frames)) == transport::ReadResult::kMessage) {
    Result<Message> m = transport::Decode(frames);
    if (!m.ok()) {
      FUZZ_CHECK(m.status().code() != ErrorCode::kOk);
      ++*refused;
      continue;
    }
    FUZZ_CHECK(frames.count == (HasPayloadFrame(TypeOf(*m)) ? 2u : 1u));
    Accepted a{*m, std::string(frames.header), std::string(frames.payload)};
    const zmq::message_t header = reader.TakeHeader();
    FUZZ_CHECK(transport::View(header) == a.header);
    if (frames.count == 2) {
      const zmq::message_t payload = reader.TakePayload();
      FUZZ_CHECK(transport::View(payload) == a.payload);
    }
    accepted.push_back(std::move(a));
  }
  FUZZ_CHECK(r == transport::ReadResult::kNothing);
  FUZZ_CHECK(!reader.buffered());
  *dropped = reader.dropped_frames();
  return accepted;
}

void Send(const FrameInput& in) {
  zmq::socket_t& s = Pair().out;
  for (std::size_t i = 0; i < in.frames.size(); ++i) {
    zmq::message_t f(in.frames[i].data(), in.frames[i].size());
    const auto flags = i + 1 < in.frames.size() ? zmq::send_flags::sndmore
                                                : zmq::send_flags::none;
    FUZZ_CHECK(s.send(f, flags | zmq::send_flags::dontwait).has_value());
  }
}

// Sends `batch` and reads it back; it must give `expected` exactly.
void ExpectRoundTrip(transport::Batch& batch, bool routed,
                     const std::vector<Accepted>& expected) {
  if (expected.empty()) return;
  FUZZ_CHECK(batch.Send(Pair().out, routed ? "peer" : "") ==
             transport::SendResult::kOk);
  std::size_t refused = 0;
  std::uint64_t dropped = 0;
  const std::vector<Accepted> got =
      ReadAll(Pair().in, routed, &refused, &dropped);
  FUZZ_CHECK(refused == 0 && dropped == 0);
  FUZZ_CHECK(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    FUZZ_CHECK(got[i].message == expected[i].message);
    FUZZ_CHECK(got[i].payload == expected[i].payload);
  }
}

}  // namespace
}  // namespace rejoin::fuzz

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  using namespace rejoin::fuzz;
  const FrameInput in = ParseFrames(AsText(data, size));
  Send(in);
  std::size_t refused = 0;
  std::uint64_t dropped = 0;
  const std::vector<Accepted> accepted =
      ReadAll(Pair().in, in.routed, &refused, &dropped);

  transport::Batch forwarded;
  for (const Accepted& a : accepted) {
    forwarded.AddEncoded(a.header, a.payload,
                         HasPayloadFrame(TypeOf(a.message)));
  }
  ExpectRoundTrip(forwarded, in.routed, accepted);

  transport::Batch reencoded;
  for (const Accepted& a : accepted) reencoded.Add(a.message, a.payload);
  ExpectRoundTrip(reencoded, in.routed, accepted);
  return 0;
}
