// Writes the generated seed corpora of the fuzz targets under DIR:
//   DIR/codec    the encodings of every valid sample and variant message
//                (the golden files in tests/data/golden are seeds too);
//   DIR/batch    batches and pack frames as the transport's Batch sends them;
//   DIR/journal  journal directories written by seeded workloads, some with
//                compaction, some with a torn tail;
//   DIR/roster   roster files as the broker writes them;
//   DIR/keys     keys files with fresh CURVE keys;
//   DIR/keyfile  an endpoint's key files (a flags byte, then the file), as
//                WriteKeyFile writes them and as a person might edit them.
// Usage: fuzz_seeds DIR. Deterministic but for the CURVE keys, which are
// drawn afresh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "fuzz_frames.h"
#include "fuzz_journal_files.h"
#include "proto/codec_samples.h"
#include "rejoin/proto/codec.h"
#include "rejoin/proto/journal.h"
#include "rejoin/transport/curve.h"
#include "rejoin/transport/wire.h"
#include "roster.h"
#include "support/fault_env.h"
#include "support/journal_workload.h"

namespace rejoin::fuzz {
namespace {

// Seeds larger than this slow every run of libFuzzer (it sizes its inputs
// after the largest seed); the mutator grows inputs where it pays.
constexpr std::size_t kMaxSeedBytes = 16 * 1024;

bool Write(const std::filesystem::path& dir, const std::string& name,
           const std::string& bytes) {
  if (bytes.size() > kMaxSeedBytes) return true;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.good()) {
    std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
    return false;
  }
  return true;
}

bool CodecSeeds(const std::filesystem::path& dir) {
  const std::vector<Message> all = testing::AllValidMessages();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (!Write(dir, "valid-" + std::to_string(i), EncodeHeader(all[i]))) {
      return false;
    }
  }
  return true;
}

// The frames of the one ZeroMQ message `batch` sends, as the batch target
// takes them.
std::string Capture(transport::Batch& batch, bool routed) {
  static zmq::context_t context(0);
  zmq::socket_t in(context, zmq::socket_type::pair);
  zmq::socket_t out(context, zmq::socket_type::pair);
  in.bind("inproc://fuzz-seeds");
  out.connect("inproc://fuzz-seeds");
  (void)batch.Send(out, routed ? "peer-1" : "");
  FrameInput frames;
  frames.routed = routed;
  zmq::message_t f;
  do {
    (void)in.recv(f, zmq::recv_flags::none);
    frames.frames.emplace_back(static_cast<const char*>(f.data()), f.size());
  } while (f.more());
  in.unbind("inproc://fuzz-seeds");
  return FormatFrames(frames);
}

bool BatchSeeds(const std::filesystem::path& dir) {
  const std::vector<Message> all = testing::AllValidMessages();
  const std::string small_payload = "payload";
  const std::string large_payload(transport::kPackMaxPayload + 1, 'p');
  for (bool routed : {false, true}) {
    const std::string r = routed ? "routed-" : "plain-";
    // Each message alone, in a pack frame.
    for (std::size_t i = 0; i < all.size(); ++i) {
      transport::Batch b;
      b.Add(all[i], small_payload);
      if (!Write(dir, r + "single-" + std::to_string(i), Capture(b, routed))) {
        return false;
      }
    }
    // Everything that fits, packed together, then a payload with frames of
    // its own between packed messages.
    transport::Batch packed;
    for (const Message& m : all) {
      if (EncodeHeader(m).size() < 2048) packed.Add(m, small_payload);
    }
    if (!Write(dir, r + "packed", Capture(packed, routed))) return false;
    transport::Batch mixed;
    mixed.Add(testing::SampleOf(MessageType::kAck));
    mixed.Add(testing::SampleOf(MessageType::kRequest), large_payload);
    mixed.Add(testing::SampleOf(MessageType::kResponse), small_payload);
    if (!Write(dir, r + "mixed", Capture(mixed, routed))) return false;
  }
  return true;
}

bool JournalSeeds(const std::filesystem::path& dir) {
  int n = 0;
  for (JournalRole role : {JournalRole::kClient, JournalRole::kServer}) {
    for (int compact_every : {0, 2}) {
      for (std::uint64_t seed : {1u, 2u}) {
        testing::FaultEnv env(seed);
        JournalOptions o;
        o.dir = "/j";
        o.role = role;
        o.owner_id = role == JournalRole::kServer ? "server-1" : "client-1";
        o.new_journal_id = [] { return JournalId{0x5eed}; };
        o.env = &env;
        const auto steps = testing::MakeWorkload(role, seed, 4, compact_every);
        const testing::Outcome out = testing::RunUntilFailure(o, steps);
        if (!out.error.ok()) {
          std::fprintf(stderr, "workload: %s\n", out.error.ToString().c_str());
          return false;
        }
        JournalInput input;
        input.flags = static_cast<std::uint8_t>(
            (role == JournalRole::kServer ? kFlagServer : 0) |
            (compact_every != 0 ? kFlagCompact : kFlagSalvage) |
            (seed == 2 ? kFlagFixChecksums : 0));
        for (const std::string& name : env.FileNames("/j")) {
          if (name.rfind("seg-", 0) == 0) {
            input.segments.push_back(env.Contents("/j/" + name));
          }
        }
        const std::string id = std::to_string(n++);
        if (!Write(dir, "journal-" + id, FormatJournalInput(input))) {
          return false;
        }
        // The same journal with its last record torn.
        if (!input.segments.empty() && input.segments.back().size() > 20) {
          input.segments.back().resize(input.segments.back().size() - 5);
          if (!Write(dir, "torn-" + id, FormatJournalInput(input))) {
            return false;
          }
        }
      }
    }
  }
  return true;
}

bool RosterSeeds(const std::filesystem::path& dir) {
  using broker_internal::EncodeRoster;
  using broker_internal::RosterContents;
  RosterContents empty;
  RosterContents full;
  full.complete = true;
  full.epochs = {0x00c0ffee12345678, 1, ~Epoch{0}};
  full.servers = {"echo-1", "payments.eu-2", std::string(128, 's')};
  return Write(dir, "empty", EncodeRoster(empty)) &&
         Write(dir, "full", EncodeRoster(full));
}

bool KeysSeeds(const std::filesystem::path& dir) {
  Result<transport::KeyPair> a = transport::GenerateKeyPair();
  Result<transport::KeyPair> b = transport::GenerateKeyPair();
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "cannot generate CURVE keys\n");
    return false;
  }
  const std::string text = "# tellers and the bank\nprincipal alice key " +
                           a->public_key + "\nprincipal bank key " +
                           b->public_key +
                           "\nallow alice call bank.*\n"
                           "allow bank serve bank.[a-z]*\nallow * call ping\n";
  return Write(dir, "keys", text);
}

bool KeyFileSeeds(const std::filesystem::path& dir) {
  Result<transport::KeyPair> a = transport::GenerateKeyPair();
  if (!a.ok()) {
    std::fprintf(stderr, "cannot generate CURVE keys\n");
    return false;
  }
  const std::string pair = transport::KeyFileText(*a, /*with_secret=*/true);
  const std::string pub = transport::KeyFileText(*a, /*with_secret=*/false);
  const std::string edited =
      "\r\n  # the echo server's pair\r\n\tsecret-key  " + a->secret_key +
      "\t\r\npublic-key " + a->public_key + "   \r\n# end";
  return Write(dir, "pair", std::string(1, '\1') + pair) &&
         Write(dir, "public", std::string(1, '\0') + pub) &&
         Write(dir, "pair_as_public", std::string(1, '\0') + pair) &&
         Write(dir, "edited", std::string(1, '\1') + edited);
}

}  // namespace
}  // namespace rejoin::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir(argv[1]);
  using namespace rejoin::fuzz;
  const bool ok = CodecSeeds(dir / "codec") && BatchSeeds(dir / "batch") &&
                  JournalSeeds(dir / "journal") &&
                  RosterSeeds(dir / "roster") && KeysSeeds(dir / "keys") &&
                  KeyFileSeeds(dir / "keyfile");
  return ok ? 0 : 1;
}
