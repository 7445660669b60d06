// The input format of the journal fuzz target, shared with the seed
// generator: one byte of flags, then the journal directory's segment files
// back to back. A new file starts at every occurrence of the segment magic
// "RJJOURNL" (and, when the input does not start with it, the bytes before
// the first one are a file of their own); files are named seg-000000000001.rjl
// upwards in input order. Flags: bit 0: the opener is a server (used when no
// open record names the role), bit 1: compact after opening, bit 2: salvage a
// corrupt journal, bit 3: write every record's checksum afresh before the
// files are read (so that mutated bodies reach the record decoder instead of
// failing their checksum).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace rejoin::fuzz {

inline constexpr std::string_view kSegmentMagic = "RJJOURNL";
inline constexpr std::size_t kMaxFuzzSegments = 8;

inline constexpr std::uint8_t kFlagServer = 1;
inline constexpr std::uint8_t kFlagCompact = 2;
inline constexpr std::uint8_t kFlagSalvage = 4;
inline constexpr std::uint8_t kFlagFixChecksums = 8;

struct JournalInput {
  std::uint8_t flags = 0;
  std::vector<std::string> segments;
};

inline JournalInput ParseJournalInput(std::string_view in) {
  JournalInput out;
  if (in.empty()) return out;
  out.flags = static_cast<std::uint8_t>(in[0]);
  in.remove_prefix(1);
  while (!in.empty() && out.segments.size() < kMaxFuzzSegments) {
    std::size_t next = in.find(kSegmentMagic, 1);
    if (out.segments.size() + 1 == kMaxFuzzSegments) {
      next = std::string_view::npos;
    }
    out.segments.emplace_back(in.substr(0, next));
    in.remove_prefix(next == std::string_view::npos ? in.size() : next);
  }
  return out;
}

inline std::string FormatJournalInput(const JournalInput& in) {
  std::string out(1, static_cast<char>(in.flags));
  for (const std::string& s : in.segments) out += s;
  return out;
}

inline std::string SegmentName(std::size_t number) {
  char name[32];
  std::snprintf(name, sizeof name, "seg-%012zu.rjl", number);
  return name;
}

}  // namespace rejoin::fuzz
