// The wire codec: Message <-> header frame bytes (PROTOCOL.md §2-4). Encoding
// never fails for a message that satisfies the field rules of PROTOCOL.md;
// decoding is strict and returns an ErrorCode for anything else. No sockets:
// the I/O shells hand frames in as byte views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "rejoin/proto/messages.h"
#include "rejoin/proto/status.h"

namespace rejoin {

// Limits the decoder enforces (PROTOCOL.md §8).
struct CodecLimits {
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_payload_bytes = 16 * 1024 * 1024;
  std::size_t max_array_items = 65536;  // any one array in a header
  std::size_t max_string_bytes = 4096;  // any one string in a header
};

// Checks the field rules of PROTOCOL.md §4 that DecodeHeader applies after
// parsing: ids, seqs, enum ranges, state vector validity, string and list
// sizes. Returns kMalformed, or kTooLarge for a field over its limit. Senders
// use it on messages built from application input before EncodeHeader; the
// payload-frame rule of RESPONSE is not covered (it needs the payload size).
Status ValidateMessage(const Message& m,
                       const CodecLimits& limits = CodecLimits());

// Appends the header frame of `m` (signature, version, type, msgpack body) to
// `out`. The payload frame of REQUEST/RESPONSE is the caller's.
void EncodeHeader(const Message& m, std::string& out);
std::string EncodeHeader(const Message& m);

// Reads the message type of a header frame after checking signature and
// version, without decoding the body. For routing decisions that need only the
// type.
Result<MessageType> PeekType(std::span<const std::byte> header);

// Decodes one header frame. `frame_count` is the number of frames the message
// arrived in (after any routing-id frame): 2 for REQUEST/RESPONSE, 1 for all
// others; any other count is kMalformed. `payload_bytes` is the payload
// frame's size (0 when absent), checked against the limits.
Result<Message> DecodeHeader(std::span<const std::byte> header,
                             std::size_t frame_count,
                             std::size_t payload_bytes = 0,
                             const CodecLimits& limits = CodecLimits());

// Convenience overload over a string.
Result<Message> DecodeHeader(std::string_view header, std::size_t frame_count,
                             std::size_t payload_bytes = 0,
                             const CodecLimits& limits = CodecLimits());

}  // namespace rejoin
