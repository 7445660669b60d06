// Fuzz target: one header frame through the codec (DecodeHeader, and with it
// the state vectors of STATE_EXCHANGE and PROBE_REPLY). The input is the
// header frame's bytes, as the golden files hold them; it is decoded with the
// frame count its type calls for. Properties beyond "no crash":
// - the direct decoder agrees with the general one (same message, or the
//   same error code);
// - an accepted message passes ValidateMessage, PeekType names its type, it
//   re-encodes to bytes that decode to the same message, and that encoding
//   is a fixed point;
// - the wrong frame count, or a payload over the limit, is refused;
// - what tighter limits accept, the default limits accept as the same
//   message.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "codec_flat.h"
#include "fuzz_check.h"
#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin::fuzz {
namespace {

void CheckAccepted(std::string_view header, const Message& m,
                   std::size_t frames, const CodecLimits& limits) {
  FUZZ_CHECK(ValidateMessage(m, limits).ok());
  Result<MessageType> type = PeekType(std::as_bytes(std::span(header)));
  FUZZ_CHECK(type.ok() && *type == TypeOf(m));
  FUZZ_CHECK(frames == (HasPayloadFrame(TypeOf(m)) ? 2u : 1u));

  const std::string encoded = EncodeHeader(m);
  Result<Message> again = DecodeHeader(encoded, frames, 0, limits);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == m);
  FUZZ_CHECK(EncodeHeader(*again) == encoded);

  FUZZ_CHECK(!DecodeHeader(header, frames == 1 ? 2 : 1, 0, limits).ok());
  FUZZ_CHECK(!DecodeHeader(header, 0, 0, limits).ok());
  if (frames == 2) {
    Result<Message> big =
        DecodeHeader(header, frames, limits.max_payload_bytes + 1, limits);
    FUZZ_CHECK(!big.ok() && big.status().code() == ErrorCode::kTooLarge);
  }
}

}  // namespace
}  // namespace rejoin::fuzz

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size) {
  using namespace rejoin;
  const std::string_view header = fuzz::AsText(data, size);
  const CodecLimits limits;
  Result<MessageType> type = PeekType(std::as_bytes(std::span(header)));
  const std::size_t frames = type.ok() && HasPayloadFrame(*type) ? 2 : 1;

  Result<Message> direct = DecodeHeader(header, frames, 0, limits);
  Result<Message> general =
      codec_internal::DecodeGeneral(header, frames, 0, limits);
  FUZZ_CHECK(direct.ok() == general.ok());
  if (!direct.ok()) {
    FUZZ_CHECK(direct.status().code() == general.status().code());
    return 0;
  }
  FUZZ_CHECK(*direct == *general);
  fuzz::CheckAccepted(header, *direct, frames, limits);

  CodecLimits tight;
  tight.max_header_bytes = 512;
  tight.max_array_items = 4;
  tight.max_string_bytes = 24;
  Result<Message> small = DecodeHeader(header, frames, 0, tight);
  if (small.ok()) FUZZ_CHECK(*small == *direct);
  return 0;
}
