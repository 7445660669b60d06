// CRC-32C, reflected polynomial 0x82f63b78. The portable path processes
// eight bytes per step with eight derived tables ("slicing by 8"); the
// hardware path feeds eight bytes at a time to the SSE4.2 crc32 instruction.
// The choice is made once, at first use, from a CPUID check.
#include "crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define REJOIN_CRC32C_X86 1
#include <nmmintrin.h>
#endif

namespace rejoin::crc32c {
namespace {

constexpr std::uint32_t kPolynomial = 0x82f63b78u;

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1u) ? (crc >> 1) ^ kPolynomial : crc >> 1;
    }
    t[0][i] = crc;
  }
  // Table k maps a byte to its contribution when k more zero bytes follow,
  // which lets eight input bytes be folded in one step.
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t i = 0; i < 256; ++i) {
      std::uint32_t prev = t[k - 1][i];
      t[k][i] = (prev >> 8) ^ t[0][prev & 0xffu];
    }
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline std::uint32_t Byte(std::uint64_t v, int index) {
  return static_cast<std::uint32_t>((v >> (8 * index)) & 0xffu);
}

std::uint64_t LoadLittleEndian64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

using ExtendFn = std::uint32_t (*)(std::uint32_t, const char*, std::size_t);

ExtendFn ChooseImplementation() {
  return HardwareAvailable() ? &ExtendHardware : &ExtendPortable;
}

}  // namespace

std::uint32_t ExtendPortable(std::uint32_t crc, const char* data,
                             std::size_t n) {
  std::uint32_t c = ~crc;
  const char* p = data;
  while (n >= 8) {
    std::uint64_t v = LoadLittleEndian64(p) ^ c;
    c = kTables[7][Byte(v, 0)] ^ kTables[6][Byte(v, 1)] ^
        kTables[5][Byte(v, 2)] ^ kTables[4][Byte(v, 3)] ^
        kTables[3][Byte(v, 4)] ^ kTables[2][Byte(v, 5)] ^
        kTables[1][Byte(v, 6)] ^ kTables[0][Byte(v, 7)];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ kTables[0][(c ^ static_cast<unsigned char>(*p)) & 0xffu];
    ++p;
    --n;
  }
  return ~c;
}

#ifdef REJOIN_CRC32C_X86

__attribute__((target("sse4.2"))) std::uint32_t ExtendHardware(
    std::uint32_t crc, const char* data, std::size_t n) {
  std::uint64_t c = ~crc;
  const char* p = data;
  while (n >= 8) {
    c = _mm_crc32_u64(c, LoadLittleEndian64(p));
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, static_cast<unsigned char>(*p));
    ++p;
    --n;
  }
  return ~c32;
}

bool HardwareAvailable() {
  static const bool available = __builtin_cpu_supports("sse4.2") != 0;
  return available;
}

#else

// No hardware path on this architecture: HardwareAvailable() is false, so
// Extend() never calls this; it stays correct all the same.
std::uint32_t ExtendHardware(std::uint32_t crc, const char* data,
                             std::size_t n) {
  return ExtendPortable(crc, data, n);
}

bool HardwareAvailable() { return false; }

#endif

std::uint32_t Extend(std::uint32_t crc, const char* data, std::size_t n) {
  static const ExtendFn impl = ChooseImplementation();
  return impl(crc, data, n);
}

}  // namespace rejoin::crc32c
