#include "codec_flat.h"

#include <cstdint>
#include <limits>
#include <string>

namespace rejoin::codec_internal {
namespace {

// A cursor over msgpack bytes that accepts only what EncodeHeader writes for
// these types: a fixarray, unsigned integers in their unsigned encodings,
// strs. Every failure is "not mine", never an error.
class FlatReader {
 public:
  explicit FlatReader(std::string_view bytes)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool done() const { return p_ == end_; }

  bool Array(int arity) { return arity < 16 && Byte() == 0x90 + arity; }

  template <typename T>
  bool Unsigned(T& out) {
    std::uint64_t v = 0;
    const int marker = Byte();
    if (marker >= 0 && marker <= 0x7f) {
      v = static_cast<std::uint64_t>(marker);
    } else if (!Wide(marker, 0xcc, 4, v)) {  // uint 8, 16, 32, 64
      return false;
    }
    if (v > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(v);
    return true;
  }

  bool Str(std::string& out, std::size_t max_bytes) {
    std::uint64_t n = 0;
    const int marker = Byte();
    if (marker >= 0xa0 && marker <= 0xbf) {
      n = static_cast<std::uint64_t>(marker - 0xa0);
    } else if (!Wide(marker, 0xd9, 3, n)) {  // str 8, 16, 32
      return false;
    }
    if (n > max_bytes || n > static_cast<std::uint64_t>(end_ - p_)) {
      return false;
    }
    out.assign(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }

 private:
  // The next byte as 0..255, or -1 at the end.
  int Byte() {
    if (p_ == end_) return -1;
    return static_cast<unsigned char>(*p_++);
  }

  // `marker` is one of `count` consecutive markers from `first` whose
  // value follows in 1, 2, 4 (, 8) big-endian bytes.
  bool Wide(int marker, int first, int count, std::uint64_t& out) {
    const int k = marker - first;
    return k >= 0 && k < count && BigEndian(1 << k, out);
  }

  bool BigEndian(int bytes, std::uint64_t& out) {
    if (end_ - p_ < bytes) return false;
    out = 0;
    for (int i = 0; i < bytes; ++i) {
      out = (out << 8) | static_cast<unsigned char>(*p_++);
    }
    return true;
  }

  const char* p_;
  const char* end_;
};

std::optional<Message> ReadRequest(FlatReader& r, const CodecLimits& limits) {
  Request m;
  if (!r.Array(6) || !r.Str(m.session, limits.max_string_bytes) ||
      !r.Unsigned(m.seq) || !r.Str(m.service, limits.max_string_bytes) ||
      !r.Unsigned(m.completed_watermark) || !r.Unsigned(m.deadline_ms) ||
      !r.Unsigned(m.flags) || !r.done()) {
    return std::nullopt;
  }
  return Message(std::move(m));
}

std::optional<Message> ReadResponse(FlatReader& r, const CodecLimits& limits) {
  Response m;
  std::underlying_type_t<ErrorCode> status = 0;
  if (!r.Array(3) || !r.Str(m.session, limits.max_string_bytes) ||
      !r.Unsigned(m.seq) || !r.Unsigned(status) || !r.done()) {
    return std::nullopt;
  }
  m.status = static_cast<ErrorCode>(status);
  return Message(std::move(m));
}

}  // namespace

std::optional<Message> DecodeFlat(MessageType type, std::string_view body,
                                  const CodecLimits& limits) {
  FlatReader r(body);
  switch (type) {
    case MessageType::kRequest:
      return ReadRequest(r, limits);
    case MessageType::kResponse:
      return ReadResponse(r, limits);
    default:
      return std::nullopt;
  }
}

}  // namespace rejoin::codec_internal
