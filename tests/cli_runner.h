// Runs the sparsetrain binary under test (SPARSETRAIN_BINARY) for the
// command-line tests, and makes per-process temporary folders.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace sparsetrain::testing {

struct RunResult {
  int exit_code;
  std::string out;
};

// Runs a shell command line and returns its stdout and exit code. A crash
// shows as an exit code of 128 + the signal.
inline RunResult run_shell(const std::string& cmd) {
  RunResult r{-1, {}};
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// The program's stdout, and its stderr too when `merge_stderr` is set
// (otherwise stderr is dropped, so stdout parses as JSON).
inline RunResult run_cli(const std::string& args, bool merge_stderr) {
  return run_shell(std::string(SPARSETRAIN_BINARY) + " " + args +
                   (merge_stderr ? " 2>&1" : " 2>/dev/null"));
}

// A fresh, empty folder named after `prefix`, `name` and the process id.
inline std::filesystem::path fresh_temp_dir(const std::string& prefix, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / (prefix + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace sparsetrain::testing
