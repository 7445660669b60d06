// Whole-file helpers for tests that inspect or damage what the code under
// test wrote (journal segments, process output). Binary-safe.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace rejoin::testing {

// The file's bytes, or an empty string when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return {};
  std::string bytes(static_cast<std::size_t>(size), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

// Replaces the file's contents with `bytes`.
inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace rejoin::testing
