// transport::Reader and transport::Batch: several rejoin messages travel in
// one ZeroMQ message (small ones packed into one frame) and come out one by
// one, each with its own payload; damage inside a batch costs what follows it
// in that batch and nothing else.
#include "rejoin/transport/wire.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "rejoin/proto/codec.h"

namespace rejoin::transport {
namespace {

// A DEALER talking to a ROUTER over 127.0.0.1.
class Pair : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::routing_id, "peer-1");
    router_.bind("tcp://127.0.0.1:*");
    dealer_.connect(router_.get(zmq::sockopt::last_endpoint));
  }

  // Waits for the next message on the ROUTER side.
  ReadResult Next(Frames& out) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      ReadResult r = reader_.Next(router_, out);
      if (r != ReadResult::kNothing ||
          std::chrono::steady_clock::now() > deadline) {
        return r;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void SendRaw(const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      zmq::message_t f(frames[i].data(), frames[i].size());
      dealer_.send(f, i + 1 < frames.size() ? zmq::send_flags::sndmore
                                            : zmq::send_flags::none);
    }
  }

  // `frames`, a batch holding HEARTBEAT 1 and then a bad header, is sent
  // and then a good batch with HEARTBEAT 4: the reader hands out 1, the bad
  // header, and 4, dropping `dropped` frames in between.
  void ExpectBadHeaderEndsBatch(const std::vector<std::string>& frames,
                                std::uint64_t dropped) {
    SendRaw(frames);
    Batch next;
    next.Add(Heartbeat{4});
    ASSERT_EQ(next.Send(dealer_, ""), SendResult::kOk);

    Frames f;
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    EXPECT_EQ(std::get<Heartbeat>(*Decode(f)).epoch, 1u);
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    EXPECT_FALSE(Decode(f).ok());  // the bad header, handed out for reporting
    EXPECT_EQ(reader_.dropped_frames(), dropped);
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    EXPECT_EQ(std::get<Heartbeat>(*Decode(f)).epoch, 4u);
  }

  zmq::context_t context_{1};
  zmq::socket_t router_{context_, zmq::socket_type::router};
  zmq::socket_t dealer_{context_, zmq::socket_type::dealer};
  Reader reader_{/*routed=*/true};
};

zmq::message_t Frame(const std::string& s) {
  return zmq::message_t(s.data(), s.size());
}

TEST_F(Pair, ABatchComesOutOneMessageAtATimeWithItsPayloads) {
  Batch batch;
  zmq::message_t p1 = Frame("first payload");
  zmq::message_t p2 = Frame("");
  batch.Add(Request{"alice", 1, "echo", 1, 0, 0}, &p1);
  batch.Add(Heartbeat{7});
  batch.Add(Request{"alice", 2, "echo", 1, 0, 0}, &p2);
  batch.Add(Ack{"alice", 3, {}});
  EXPECT_EQ(batch.messages(), 4u);
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);
  EXPECT_TRUE(batch.empty());

  Frames f;
  std::vector<Message> got;
  std::vector<std::string> payloads;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    EXPECT_EQ(f.route, "peer-1");
    Result<Message> m = Decode(f);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    got.push_back(*m);
    payloads.push_back(std::string(View(f.payload)));
  }
  EXPECT_EQ(std::get<Request>(got[0]).seq, 1u);
  EXPECT_EQ(payloads[0], "first payload");
  EXPECT_EQ(std::get<Heartbeat>(got[1]).epoch, 7u);
  EXPECT_EQ(payloads[1], "");
  EXPECT_EQ(std::get<Request>(got[2]).seq, 2u);
  EXPECT_EQ(payloads[2], "");
  EXPECT_EQ(std::get<Ack>(got[3]).completed_watermark, 3u);
  EXPECT_EQ(reader_.Next(router_, f), ReadResult::kNothing);
}

TEST_F(Pair, ForwardedFramesAndEncodedMessagesMix) {
  Batch batch;
  zmq::message_t header =
      Frame(EncodeHeader(Response{"bob", 4, ErrorCode::kOk}));
  zmq::message_t payload = Frame("answer");
  batch.AddFrames(header, payload, true);
  batch.Add(Goodbye{"done", {}});
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Response>(*Decode(f)).seq, 4u);
  EXPECT_EQ(View(f.payload), "answer");
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Goodbye>(*Decode(f)).reason, "done");
}

TEST_F(Pair, ABadHeaderEndsItsBatchButNotTheNextOne) {
  ExpectBadHeaderEndsBatch(
      {EncodeHeader(Heartbeat{1}), "not a header", EncodeHeader(Heartbeat{2}),
       EncodeHeader(Heartbeat{3})},
      2);
}

TEST_F(Pair, ARequestWithoutItsPayloadFrameIsMalformed) {
  SendRaw({EncodeHeader(Heartbeat{1}),
           EncodeHeader(Request{"alice", 1, "echo", 1, 0, 0})});
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_TRUE(Decode(f).ok());
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(f.count, 1u);
  Result<Message> m = Decode(f);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ErrorCode::kMalformed);
}

// A pack frame by hand (PROTOCOL.md §2.2): signature, then sized entries.
std::string Sized(const std::string& bytes) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) {
    out[static_cast<std::size_t>(i)] =
        static_cast<char>((bytes.size() >> (8 * i)) & 0xffu);
  }
  return out + bytes;
}
const std::string kPack("RJ\x01\x00", 4);

TEST(Pack, ThePackFrameIsTellableFromHeaders) {
  EXPECT_TRUE(IsPackFrame(kPack));
  EXPECT_FALSE(IsPackFrame(EncodeHeader(Heartbeat{1})));
  EXPECT_FALSE(IsPackFrame("RJ"));
  EXPECT_FALSE(IsPackFrame(std::string("RJ\x02\x00", 4)));
}

TEST_F(Pair, SmallMessagesTravelInOneFrame) {
  Batch batch;
  for (Seq seq = 1; seq <= 50; ++seq) {
    zmq::message_t p = Frame("payload " + std::to_string(seq));
    batch.Add(Request{"alice", seq, "echo", 1, 0, 0}, &p);
  }
  batch.Add(Heartbeat{9});
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);

  // One routing frame and one pack frame: nothing else on the wire.
  zmq::message_t route, pack;
  ASSERT_TRUE(router_.recv(route));
  ASSERT_TRUE(route.more());
  ASSERT_TRUE(router_.recv(pack));
  EXPECT_FALSE(pack.more());
  EXPECT_TRUE(IsPackFrame(View(pack)));
}

TEST_F(Pair, ABigBatchSpreadsOverSeveralPackFramesInOrder) {
  const std::string kilobyte(1024, 'k');
  const Seq n = 2 * kPackTargetBytes / kilobyte.size();
  Batch batch;
  for (Seq seq = 1; seq <= n; ++seq) {
    zmq::message_t p = Frame(std::to_string(seq) + kilobyte);
    batch.Add(Request{"alice", seq, "echo", 1, 0, 0}, &p);
  }
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);
  Frames f;
  for (Seq seq = 1; seq <= n; ++seq) {
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    ASSERT_EQ(std::get<Request>(*Decode(f)).seq, seq);
    ASSERT_EQ(f.payload, std::to_string(seq) + kilobyte);
  }
  EXPECT_FALSE(reader_.buffered());
}

TEST_F(Pair, PackedMessagesComeOutOneByOneAndCanBeKept) {
  Batch batch;
  for (Seq seq = 1; seq <= 3; ++seq) {
    zmq::message_t p = Frame("payload " + std::to_string(seq));
    batch.Add(Request{"alice", seq, "echo", 1, 0, 0}, &p);
  }
  batch.Add(Ack{"alice", 2, {}});
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);

  Frames f;
  std::vector<zmq::message_t> kept;
  for (Seq seq = 1; seq <= 3; ++seq) {
    ASSERT_EQ(Next(f), ReadResult::kMessage);
    EXPECT_EQ(f.count, 2u);
    EXPECT_EQ(f.route, "peer-1");
    EXPECT_EQ(std::get<Request>(*Decode(f)).seq, seq);
    EXPECT_EQ(f.payload, "payload " + std::to_string(seq));
    kept.push_back(reader_.TakePayload());
    EXPECT_TRUE(reader_.buffered());
  }
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(f.count, 1u);
  EXPECT_EQ(std::get<Ack>(*Decode(f)).completed_watermark, 2u);
  EXPECT_FALSE(reader_.buffered());
  EXPECT_EQ(reader_.Next(router_, f), ReadResult::kNothing);
  // The copies outlive the frame they came from.
  EXPECT_EQ(View(kept[0]), "payload 1");
  EXPECT_EQ(View(kept[2]), "payload 3");
}

TEST_F(Pair, LargePayloadsKeepTheirOwnFramesAndTheOrder) {
  const std::string big(kPackMaxPayload + 1, 'x');
  Batch batch;
  zmq::message_t p1 = Frame("small");
  zmq::message_t p2 = Frame(big);
  zmq::message_t p3 = Frame("small again");
  batch.Add(Request{"alice", 1, "echo", 1, 0, 0}, &p1);
  batch.Add(Request{"alice", 2, "echo", 1, 0, 0}, &p2);
  batch.Add(Request{"alice", 3, "echo", 1, 0, 0}, &p3);
  EXPECT_EQ(batch.messages(), 3u);
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);

  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Request>(*Decode(f)).seq, 1u);
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Request>(*Decode(f)).seq, 2u);
  EXPECT_EQ(f.payload.size(), big.size());
  // Its own frame, handed over whole.
  zmq::message_t taken = reader_.TakePayload();
  EXPECT_EQ(View(taken), big);
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Request>(*Decode(f)).seq, 3u);
  EXPECT_EQ(f.payload, "small again");
}

TEST_F(Pair, AnEntryRunningPastItsPackFrameIsMalformedAndEndsThatFrame) {
  std::string pack = kPack + Sized(EncodeHeader(Heartbeat{1}));
  pack += Sized(EncodeHeader(Heartbeat{2})).substr(0, 6);  // cut short
  SendRaw({pack, EncodeHeader(Heartbeat{3})});

  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Heartbeat>(*Decode(f)).epoch, 1u);
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(f.count, 0u);
  EXPECT_EQ(Decode(f).status().code(), ErrorCode::kMalformed);
  // The frame after the broken pack frame still reads.
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Heartbeat>(*Decode(f)).epoch, 3u);
}

TEST_F(Pair, APackedRequestWithoutItsPayloadIsMalformed) {
  SendRaw({kPack + Sized(EncodeHeader(Request{"alice", 1, "echo", 1, 0, 0}))});
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(f.count, 1u);
  EXPECT_EQ(Decode(f).status().code(), ErrorCode::kMalformed);
  EXPECT_FALSE(reader_.buffered());
}

TEST_F(Pair, ABadHeaderInAPackEndsTheBatch) {
  // The frame after the pack frame is the one dropped frame.
  ExpectBadHeaderEndsBatch(
      {kPack + Sized(EncodeHeader(Heartbeat{1})) + Sized("not a header") +
           Sized(EncodeHeader(Heartbeat{2})),
       EncodeHeader(Heartbeat{3})},
      1);
}

TEST_F(Pair, APackInsideAPackIsAnUnknownType) {
  SendRaw({kPack + Sized(kPack + Sized(EncodeHeader(Heartbeat{1})))});
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(Decode(f).status().code(), ErrorCode::kUnknownType);
  EXPECT_FALSE(reader_.buffered());
}

TEST_F(Pair, EmptyPackFramesAreSkipped) {
  SendRaw({kPack, kPack + Sized(EncodeHeader(Heartbeat{5})), kPack});
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Heartbeat>(*Decode(f)).epoch, 5u);
  EXPECT_EQ(reader_.Next(router_, f), ReadResult::kNothing);
}

TEST_F(Pair, ForwardedBytesArePackedLikeEncodedOnes) {
  Batch batch;
  const std::string header = EncodeHeader(Response{"bob", 4, ErrorCode::kOk});
  batch.AddEncoded(header, "answer", true);
  batch.AddEncoded(EncodeHeader(Ack{"bob", 5, {}}), {}, false);
  ASSERT_EQ(batch.Send(dealer_, ""), SendResult::kOk);
  Frames f;
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(f.header, header);
  EXPECT_EQ(f.payload, "answer");
  zmq::message_t kept = reader_.TakeHeader();
  EXPECT_EQ(View(kept), header);
  ASSERT_EQ(Next(f), ReadResult::kMessage);
  EXPECT_EQ(std::get<Ack>(*Decode(f)).completed_watermark, 5u);
}

TEST(Batch, SendOnAnUnconnectedImmediateSocketWouldBlockAndEmpties) {
  zmq::context_t context(1);
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::immediate, 1);
  dealer.connect("tcp://127.0.0.1:1");  // nobody listens there
  Batch batch;
  batch.Add(Heartbeat{1});
  batch.Add(Heartbeat{2});
  EXPECT_EQ(batch.Send(dealer, ""), SendResult::kWouldBlock);
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.messages(), 0u);
}

}  // namespace
}  // namespace rejoin::transport
