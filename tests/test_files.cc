// The one atomic file writer (sparsetrain/files.h) that checkpoints, recipes,
// probe outputs and plots go through.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "cli_runner.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int entries(const fs::path& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(Files, PartsAreWrittenWholeAndNothingElseIsLeft) {
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_files_", "whole");
  const std::string path = (dir / "out.bin").string();
  const std::string_view parts[] = {"head", std::string_view("\0mid", 4), "tail"};
  write_file_atomic(path, parts);
  EXPECT_EQ(read_text(path), std::string("head\0midtail", 12));
  write_file_atomic(path, "replaced");
  EXPECT_EQ(read_text(path), "replaced");
  EXPECT_EQ(entries(dir), 1) << "a temporary file was left behind";
}

TEST(Files, FailureLeavesTheOldFileAndNoTemporary) {
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_files_", "fail");
  const std::string path = (dir / "state.json").string();
  write_file_atomic(path, "old");
  // A folder where the temporary file would go: it cannot be created.
  fs::create_directories(path + ".tmp." + std::to_string(::getpid()));
  try {
    write_file_atomic(path, "new", "--out state.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--out state.json: cannot create temporary file", 0), 0u)
        << e.what();
  }
  EXPECT_EQ(read_text(path), "old");

  try {
    write_file_atomic((dir / "no" / "such" / "folder.txt").string(), "x");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/folder.txt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "no"));
}

}  // namespace
}  // namespace sparsetrain
