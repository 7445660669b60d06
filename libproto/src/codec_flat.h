// The direct decoder of the two messages every operation carries, REQUEST and
// RESPONSE (codec.cpp uses it before the general msgpack decoder). It reads
// the canonical encodings EncodeHeader produces and gives up, returning
// nothing, on anything else, which the general decoder then judges: so
// accepted input decodes exactly as the general decoder would decode it, and
// rejected input gets the general decoder's error. Internal to rejoin::proto;
// declared here for its equivalence test.
#pragma once

#include <optional>
#include <string_view>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin::codec_internal {

// `body` is the header frame after its 4-byte prefix. Field rules
// (ValidateMessage) are not applied here.
std::optional<Message> DecodeFlat(MessageType type, std::string_view body,
                                  const CodecLimits& limits);

// The general decoder alone, as DecodeHeader was before the direct path.
Result<Message> DecodeGeneral(std::string_view header, std::size_t frame_count,
                              std::size_t payload_bytes,
                              const CodecLimits& limits);

}  // namespace rejoin::codec_internal
