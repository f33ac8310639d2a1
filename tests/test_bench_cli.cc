// `sparsetrain bench linear` end to end on tiny shapes: the JSON report has
// every field, --sweep writes a PNG, bad flags are named. Never timing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli_runner.h"

namespace {

namespace fs = std::filesystem;

using sparsetrain::testing::RunResult;

RunResult run(const std::string& args, bool merge_stderr = false) {
  return sparsetrain::testing::run_cli(args, merge_stderr);
}

fs::path temp_dir(const std::string& name) {
  return sparsetrain::testing::fresh_temp_dir("sparsetrain_bench_cli_", name);
}

constexpr const char* kTiny = "bench linear --in 37 --out 19 --batch 21 --threads 2 --reps 2";
constexpr const char* kPasses[] = {"fwd", "bwd_data", "bwd_weights", "total"};

void expect_report(const nlohmann::json& j, double sparsity) {
  for (const char* key :
       {"in", "out", "batch", "sparsity", "threads", "isa", "dense_impl", "sparse_kernels",
        "dense_ms", "sparse_ms", "speedup", "speedup_total", "reps", "nnz"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  }
  EXPECT_EQ(j["in"], 37);
  EXPECT_EQ(j["out"], 19);
  EXPECT_EQ(j["batch"], 21);
  EXPECT_EQ(j["reps"], 2);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_DOUBLE_EQ(j["sparsity"].get<double>(), sparsity);
  // Exactly round(sparsity * O * I) weights pruned.
  EXPECT_EQ(j["nnz"].get<int64_t>(), 37 * 19 - std::llround(sparsity * 37 * 19));
  const std::string isa = j["isa"];
  EXPECT_TRUE(isa == "ref" || isa == "avx2" || isa == "avx512") << isa;
  EXPECT_FALSE(j["dense_impl"].get<std::string>().empty());
  for (const char* pass : {"fwd", "bwd_data", "bwd_weights"}) {
    EXPECT_FALSE(j["sparse_kernels"][pass].get<std::string>().empty()) << pass;
    EXPECT_GT(j["speedup"][pass].get<double>(), 0.0) << pass;
  }
  for (const char* pass : kPasses) {
    EXPECT_GT(j["dense_ms"][pass].get<double>(), 0.0) << pass;
    EXPECT_GT(j["sparse_ms"][pass].get<double>(), 0.0) << pass;
  }
  EXPECT_GT(j["speedup_total"].get<double>(), 0.0);
}

TEST(BenchCli, JsonHasEveryField) {
  const RunResult r = run(std::string(kTiny) + " --sparsity 0.9 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  expect_report(j, 0.9);
}

TEST(BenchCli, TablePrintsEveryPass) {
  const RunResult r = run(std::string(kTiny) + " --sparsity 0.5", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* pass : kPasses) EXPECT_NE(r.out.find(pass), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("speed-up"), std::string::npos) << r.out;
}

TEST(BenchCli, SweepWritesJsonArrayAndPng) {
  const fs::path png = temp_dir("sweep") / "plot.png";
  const RunResult r = run(std::string(kTiny) + " --sweep --json --plot " + png.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 6u);
  const double sparsities[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99};
  for (std::size_t k = 0; k < j.size(); ++k) expect_report(j[k], sparsities[k]);

  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 1000u);
  EXPECT_FALSE(fs::exists(png.string() + ".tmp"));
  std::ifstream f(png, std::ios::binary);
  std::string head(8, '\0');
  f.read(head.data(), 8);
  EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST(BenchCli, BadFlagsAreNamed) {
  const auto expect_error = [](const std::string& args, const std::string& flag) {
    const RunResult r = run("bench linear " + args, true);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << r.out;
    EXPECT_NE(r.out.find(flag), std::string::npos) << "missing '" << flag << "' in: " << r.out;
  };
  expect_error("--sparsity 1.5", "--sparsity");
  expect_error("--sparsity 1", "--sparsity");
  expect_error("--sparsity -0.1", "--sparsity");
  expect_error("--in 0", "--in");
  expect_error("--out -4", "--out");
  expect_error("--batch 0", "--batch");
  expect_error("--reps 0", "--reps");
}

TEST(BenchCli, NeedsASubcommand) {
  const RunResult r = run("bench", true);
  EXPECT_NE(r.exit_code, 0) << r.out;
}

}  // namespace
