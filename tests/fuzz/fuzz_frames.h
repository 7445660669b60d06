// The input format of the batch fuzz target, shared with the seed generator:
// one byte of flags (bit 0: the socket is a ROUTER, so the first frame is
// the peer's routing id), then the frames of one ZeroMQ message, each a
// 2-byte little-endian size and that many bytes. A last frame that runs past
// the end keeps what is there; an input with no frame reads as one empty
// frame.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rejoin::fuzz {

struct FrameInput {
  bool routed = false;
  std::vector<std::string> frames;
};

inline FrameInput ParseFrames(std::string_view in) {
  FrameInput out;
  if (in.empty()) {
    out.frames.emplace_back();
    return out;
  }
  out.routed = (static_cast<unsigned char>(in[0]) & 1u) != 0;
  in.remove_prefix(1);
  while (!in.empty()) {
    std::size_t n = static_cast<unsigned char>(in[0]);
    if (in.size() >= 2)
      n |= std::size_t{static_cast<unsigned char>(in[1])} << 8;
    in.remove_prefix(in.size() >= 2 ? 2 : 1);
    if (n > in.size()) n = in.size();
    out.frames.emplace_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  if (out.frames.empty()) out.frames.emplace_back();
  return out;
}

inline std::string FormatFrames(const FrameInput& in) {
  std::string out(1, in.routed ? '\1' : '\0');
  for (const std::string& f : in.frames) {
    out.push_back(static_cast<char>(f.size() & 0xff));
    out.push_back(static_cast<char>((f.size() >> 8) & 0xff));
    out += f;
  }
  return out;
}

}  // namespace rejoin::fuzz
