// CRC-32C (Castagnoli polynomial), the checksum of every journal record.
// Extend() uses the SSE4.2 crc32 instruction when the CPU has it and a
// table-driven loop otherwise; both give identical results. Stored checksums
// are masked (Mask/Unmask) so that a record whose body embeds another CRC
// does not checksum to a trivially predictable value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rejoin::crc32c {

// Returns the CRC-32C of the concatenation of the bytes that produced `crc`
// and data[0, n). Extend(0, data, n) is the CRC of data alone.
std::uint32_t Extend(std::uint32_t crc, const char* data, std::size_t n);

inline std::uint32_t Value(const char* data, std::size_t n) {
  return Extend(0, data, n);
}

// The two implementations behind Extend(), exposed so tests can check that
// they agree. ExtendHardware() must only be called when HardwareAvailable().
std::uint32_t ExtendPortable(std::uint32_t crc, const char* data,
                             std::size_t n);
std::uint32_t ExtendHardware(std::uint32_t crc, const char* data,
                             std::size_t n);
bool HardwareAvailable();

inline constexpr std::uint32_t kMaskDelta = 0xa282ead8u;

// Rotates right by 15 bits and adds a constant. Computing the CRC of bytes
// that contain CRCs is weak; masking the stored value avoids that.
inline std::uint32_t Mask(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + kMaskDelta;
}

inline std::uint32_t Unmask(std::uint32_t masked) {
  std::uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace rejoin::crc32c
