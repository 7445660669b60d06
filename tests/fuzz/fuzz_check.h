// What every fuzz target shares: FUZZ_CHECK, a property check that reports
// the failed condition and aborts, so that libFuzzer (or the standalone
// driver) stops on the input and keeps it as a crash. Properties are checked
// in release builds too: this is not assert().
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                     \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

namespace rejoin::fuzz {

inline std::string_view AsText(const unsigned char* data, std::size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace rejoin::fuzz

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data,
                                      std::size_t size);
