// The standalone driver of a fuzz target for builds without libFuzzer: runs
// LLVMFuzzerTestOneInput once on every file named on the command line, and
// on every regular file of every directory named (not recursively, in name
// order, skipping names that start with '.'). A missing directory counts as
// empty. Exits 0 when every input ran, 1 when none did; a failed property
// aborts the program, naming the input on stderr first.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "fuzz_check.h"

namespace {

bool RunFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  std::fprintf(stderr, "running %s (%zu bytes)\n", path.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(reinterpret_cast<const unsigned char*>(bytes.data()),
                         bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t ran = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec)) {
      if (std::filesystem::exists(arg, ec)) {
        if (!RunFile(arg)) return 1;
        ++ran;
      }
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(arg)) {
      if (entry.is_regular_file() &&
          entry.path().filename().string().front() != '.') {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      if (!RunFile(f)) return 1;
      ++ran;
    }
  }
  std::printf("%zu inputs ran\n", ran);
  // No input at all means the corpus is missing: that is a failure, not a
  // pass.
  return ran > 0 ? 0 : 1;
}
