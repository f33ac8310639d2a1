// What every fuzz target shares. The readers take paths, so an input is
// written to a private file first; a sparsetrain::Error is how a reader
// refuses a bad file, and any other exception ends the run as a finding
// (libFuzzer reports the abort with the input that caused it). Crashes,
// sanitizer reports, memory over -rss_limit_mb and inputs slower than
// -timeout are findings too.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "sparsetrain/error.h"

namespace sparsetrain::fuzz {

// A folder of this process's own, removed at exit.
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d =
        std::filesystem::temp_directory_path() / ("sparsetrain-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(work_dir(), ec);
    });
    return d;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// Runs fn(); returns normally on success or on sparsetrain::Error, aborts on
// anything else.
template <class Fn>
void expect_only_errors(const char* target, Fn fn) {
  try {
    fn();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: an exception other than sparsetrain::Error: %s\n", target, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "%s: a non-standard exception\n", target);
    std::abort();
  }
}

}  // namespace sparsetrain::fuzz
