// `sparsetrain bench linear | conv | model` end to end on tiny shapes: the
// JSON reports have every field, --sweep writes a PNG, bad options fail with
// exit code 1 and one line naming the option. Never timing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
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
// Odd sizes on purpose: a batch that is no multiple of the vector width, an
// image whose rows the stride does not divide.
constexpr const char* kTinyConv =
    "bench conv --cin 5 --cout 7 --hw 6 --k 3 --batch 9 --threads 2 --reps 2 --warmup 1";
constexpr const char* kPasses[] = {"fwd", "bwd_data", "bwd_weights", "total"};

// The fields every layer benchmark reports, with the values of its run.
void expect_timings(const nlohmann::json& j, int64_t dense_size, double sparsity) {
  for (const char* key :
       {"sparsity", "threads", "isa", "dense_impl", "sparse_kernels", "dense_ms", "sparse_ms",
        "speedup", "speedup_total", "dense_gflops", "sparse_gflops", "reps", "nnz", "cache"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  }
  EXPECT_EQ(j["threads"], 2);
  EXPECT_DOUBLE_EQ(j["sparsity"].get<double>(), sparsity);
  // Exactly round(sparsity * size) weights pruned.
  EXPECT_EQ(j["nnz"].get<int64_t>(), dense_size - std::llround(sparsity * dense_size));
  const std::string isa = j["isa"];
  EXPECT_TRUE(isa == "ref" || isa == "avx2" || isa == "avx512") << isa;
  EXPECT_FALSE(j["dense_impl"].get<std::string>().empty());
  for (const char* pass : {"fwd", "bwd_data", "bwd_weights"}) {
    EXPECT_FALSE(j["sparse_kernels"][pass].get<std::string>().empty()) << pass;
    EXPECT_GT(j["speedup"][pass].get<double>(), 0.0) << pass;
    // Throughputs of the same FLOP counts: their ratio is the pass's speed-up
    // times the density.
    const double dense_gflops = j["dense_gflops"][pass], sparse_gflops = j["sparse_gflops"][pass];
    EXPECT_GT(dense_gflops, 0.0) << pass;
    EXPECT_NEAR(sparse_gflops / dense_gflops,
                j["speedup"][pass].get<double>() * j["nnz"].get<double>() / dense_size,
                1e-9 * sparse_gflops / dense_gflops)
        << pass;
  }
  for (const char* pass : kPasses) {
    EXPECT_GT(j["dense_ms"][pass].get<double>(), 0.0) << pass;
    EXPECT_GT(j["sparse_ms"][pass].get<double>(), 0.0) << pass;
  }
  EXPECT_GT(j["speedup_total"].get<double>(), 0.0);
}

void expect_report(const nlohmann::json& j, double sparsity) {
  for (const char* key : {"in", "out", "batch"})
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  EXPECT_EQ(j["in"], 37);
  EXPECT_EQ(j["out"], 19);
  EXPECT_EQ(j["batch"], 21);
  EXPECT_EQ(j["reps"], 2);
  expect_timings(j, 37 * 19, sparsity);
}

void expect_png(const fs::path& png) {
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 1000u);
  EXPECT_FALSE(fs::exists(png.string() + ".tmp"));
  std::ifstream f(png, std::ios::binary);
  std::string head(8, '\0');
  f.read(head.data(), 8);
  EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST(BenchCli, JsonHasEveryField) {
  const RunResult r = run(std::string(kTiny) + " --sparsity 0.9 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  expect_report(j, 0.9);
  EXPECT_EQ(j["cache"], "cold");  // the default: pass by pass
}

// --cache warm times each side's step after an untimed one; the report has
// every field and says which state it measured, in the JSON and the table.
TEST(BenchCli, WarmCaches) {
  const RunResult r = run(std::string(kTiny) + " --sparsity 0.8 --cache warm --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  expect_report(j, 0.8);
  EXPECT_EQ(j["cache"], "warm");

  const RunResult table = run(std::string(kTiny) + " --cache warm", true);
  ASSERT_EQ(table.exit_code, 0) << table.out;
  EXPECT_NE(table.out.find("warm caches"), std::string::npos) << table.out;
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

  expect_png(png);
}

// Exit code 1 and one line (stdout and stderr together) that names `flag`.
void expect_error(const std::string& args, const std::string& flag) {
  const RunResult r = run(args, true);
  EXPECT_EQ(r.exit_code, 1) << args << ": " << r.out;
  EXPECT_NE(r.out.find(flag), std::string::npos)
      << args << ": missing '" << flag << "' in: " << r.out;
  ASSERT_FALSE(r.out.empty()) << args;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << args << ": not one line: " << r.out;
}

TEST(BenchCli, BadFlagsAreNamed) {
  expect_error("bench linear --sparsity 1.5", "--sparsity");
  expect_error("bench linear --sparsity 1", "--sparsity");
  expect_error("bench linear --sparsity -0.1", "--sparsity");
  expect_error("bench linear --in 0", "--in");
  expect_error("bench linear --out -4", "--out");
  expect_error("bench linear --batch 0", "--batch");
  expect_error("bench linear --reps 0", "--reps");
  expect_error("bench linear --cache hot", "--cache");
  expect_error("bench linear --bogus 3", "--bogus");
}

// --- bench conv ------------------------------------------------------------------

// The conv fields of a report, `weights` the dense weight's size.
void expect_conv(const nlohmann::json& j, int64_t cin, int64_t cout, int64_t hw, int64_t k,
                 int64_t stride, int64_t padding, int64_t groups, int64_t batch, double sparsity) {
  for (const char* key :
       {"cin", "cout", "hw", "k", "stride", "padding", "groups", "batch", "out_hw"})
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  EXPECT_EQ(j["cin"], cin);
  EXPECT_EQ(j["cout"], cout);
  EXPECT_EQ(j["hw"], hw);
  EXPECT_EQ(j["k"], k);
  EXPECT_EQ(j["stride"], stride);
  EXPECT_EQ(j["padding"], padding);
  EXPECT_EQ(j["groups"], groups);
  EXPECT_EQ(j["batch"], batch);
  EXPECT_EQ(j["out_hw"], (hw + 2 * padding - k) / stride + 1);
  expect_timings(j, cout * (cin / groups) * k * k, sparsity);
  // The dense side says which activation layout it ran in, per pass.
  const std::string impl = j["dense_impl"];
  for (const char* pass : {"fwd=", "bwd_data=", "bwd_weights="})
    EXPECT_NE(impl.find(pass), std::string::npos) << impl;
  EXPECT_TRUE(impl.find("nhwc:") != std::string::npos || impl.find("nchw:") != std::string::npos)
      << impl;
}

TEST(BenchConvCli, JsonHasEveryField) {
  const RunResult r = run(std::string(kTinyConv) + " --sparsity 0.8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  // Padding defaults to k / 2.
  expect_conv(j, 5, 7, 6, 3, 1, 1, 1, 9, 0.8);
}

TEST(BenchConvCli, WarmCaches) {
  const RunResult r = run(std::string(kTinyConv) + " --sparsity 0.8 --cache warm --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  expect_conv(j, 5, 7, 6, 3, 1, 1, 1, 9, 0.8);
  EXPECT_EQ(j["cache"], "warm");
}

TEST(BenchConvCli, StrideGroupsAndPadding) {
  const RunResult r =
      run("bench conv --cin 4 --cout 6 --hw 7 --k 3 --stride 2 --padding 0 --groups 2 --batch 3 "
          "--threads 2 --reps 1 --warmup 0 --sparsity 0.5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  expect_conv(j, 4, 6, 7, 3, 2, 0, 2, 3, 0.5);
  EXPECT_EQ(j["out_hw"], 3);
}

TEST(BenchConvCli, TablePrintsEveryPass) {
  const RunResult r = run(std::string(kTinyConv) + " --sparsity 0.9", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("bench conv: batch 9 x 5x6x6 -> 7x6x6, 3x3 s1 p1", 0), 0u) << r.out;
  for (const char* pass : kPasses) EXPECT_NE(r.out.find(pass), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("oneDNN convolution"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("speed-up"), std::string::npos) << r.out;
}

TEST(BenchConvCli, SweepWritesJsonArrayAndPng) {
  const fs::path png = temp_dir("conv_sweep") / "plot.png";
  const RunResult r = run(std::string(kTinyConv) + " --sweep --json --plot " + png.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 6u);
  const double sparsities[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99};
  for (std::size_t k = 0; k < j.size(); ++k)
    expect_conv(j[k], 5, 7, 6, 3, 1, 1, 1, 9, sparsities[k]);
  expect_png(png);
}

TEST(BenchConvCli, BadFlagsAreNamed) {
  expect_error("bench conv --k 0", "--k");
  expect_error("bench conv --sparsity 1.5", "--sparsity");
  expect_error("bench conv --cin 0", "--cin");
  expect_error("bench conv --cout -2", "--cout");
  expect_error("bench conv --hw 0", "--hw");
  expect_error("bench conv --stride 0", "--stride");
  expect_error("bench conv --padding -3", "--padding");
  expect_error("bench conv --batch 0", "--batch");
  expect_error("bench conv --reps 0", "--reps");
  expect_error("bench conv --cache lukewarm", "--cache");
  expect_error("bench conv --cin 6 --cout 6 --groups 4", "--groups");
  expect_error("bench conv --hw 2 --k 7 --padding 1", "--k");
  expect_error("bench conv --kernel 3", "--kernel");
}

// --- bench model -----------------------------------------------------------------

constexpr const char* kTinyModel = "bench model --batch 4 --threads 2 --steps 2 --warmup 1";

// Every field of the report; returns the layer rows by name.
std::map<std::string, nlohmann::json> expect_model(const nlohmann::json& j,
                                                   const std::string& model, double sparsity) {
  for (const char* key :
       {"model", "batch", "sparsity", "distribution", "kernels", "threads", "isa", "steps",
        "dense_step_ms", "sparse_step_ms", "speedup", "dense_phases_ms", "sparse_phases_ms",
        "prunable_layers", "compressed_layers", "sparse_layers", "layers"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  }
  EXPECT_EQ(j["model"], model);
  EXPECT_EQ(j["batch"], 4);
  EXPECT_EQ(j["steps"], 2);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_DOUBLE_EQ(j["sparsity"].get<double>(), sparsity);
  EXPECT_GT(j["dense_step_ms"].get<double>(), 0.0);
  EXPECT_GT(j["sparse_step_ms"].get<double>(), 0.0);
  EXPECT_GT(j["speedup"].get<double>(), 0.0);
  for (const char* phase : {"forward", "loss", "backward", "optimizer"}) {
    EXPECT_GT(j["dense_phases_ms"][phase].get<double>(), 0.0) << phase;
    EXPECT_GT(j["sparse_phases_ms"][phase].get<double>(), 0.0) << phase;
  }
  std::map<std::string, nlohmann::json> rows;
  for (const nlohmann::json& l : j["layers"]) {
    for (const char* key : {"name", "type", "dense_ms", "sparse_ms", "sparse", "direct"})
      EXPECT_TRUE(l.contains(key)) << key << " missing in " << l.dump();
    EXPECT_GE(l["dense_ms"].get<double>(), 0.0) << l.dump();
    EXPECT_GE(l["sparse_ms"].get<double>(), 0.0) << l.dump();
    EXPECT_TRUE(l["sparse"].is_boolean()) << l.dump();
    rows[l["name"].get<std::string>()] = l;
  }
  EXPECT_EQ(rows.size(), j["layers"].size()) << "layer names repeat";
  EXPECT_TRUE(rows.count("loss")) << j.dump();
  EXPECT_TRUE(rows.count("optimizer")) << j.dump();
  return rows;
}

TEST(BenchModelCli, MlpJsonHasEveryField) {
  const RunResult r = run(std::string(kTinyModel) + " --model mlp --sparsity 0.9 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  const auto rows = expect_model(j, "mlp", 0.9);
  // No convolutions: fc1, fc2 and fc3 are all pruned, as the trainer does.
  EXPECT_EQ(j["prunable_layers"], 3);
  EXPECT_EQ(j["dense_first_last"], false);
  EXPECT_EQ(j["compressed_layers"], 3);
  EXPECT_EQ(j["sparse_layers"], 3);
  EXPECT_EQ(j["kernels"], "sparse");
  EXPECT_EQ(j["distribution"], "uniform");
  for (const char* node : {"fc1", "fc2", "fc3"}) {
    ASSERT_TRUE(rows.count(node)) << node << " missing in " << j.dump();
    EXPECT_EQ(rows.at(node)["type"], "linear");
    EXPECT_TRUE(rows.at(node)["sparse"].get<bool>()) << node;
    // 784 x 300, 300 x 100 and 100 x 10 weights at 90%: a tenth kept exactly.
    EXPECT_DOUBLE_EQ(rows.at(node)["density"].get<double>(), 0.1) << node;
  }
  ASSERT_TRUE(rows.count("relu1")) << j.dump();
  EXPECT_FALSE(rows.at("relu1")["sparse"].get<bool>());
  EXPECT_FALSE(rows.at("relu1").contains("density"));
}

TEST(BenchModelCli, ResnetCompressesConvolutions) {
  const RunResult r = run(std::string(kTinyModel) + " --model resnet20 --sparsity 0.8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const auto rows = expect_model(j, "resnet20", 0.8);
  const int prunable = j["prunable_layers"];
  EXPECT_EQ(prunable, 22);  // 19 convolutions, 2 shortcut convolutions, the classifier
  // With convolutions, the first and the last layer stay dense.
  EXPECT_EQ(j["dense_first_last"], true);
  EXPECT_EQ(j["compressed_layers"], prunable - 2);
  int sparse_convs = 0;
  for (const auto& [name, l] : rows) {
    if (l["type"] != "conv2d" || name == "conv1") continue;
    ASSERT_TRUE(l.contains("density")) << l.dump();
    EXPECT_NEAR(l["density"].get<double>(), 0.2, 0.01) << name;
    if (l["sparse"].get<bool>()) ++sparse_convs;
  }
  EXPECT_EQ(sparse_convs, prunable - 2);
  EXPECT_EQ(j["sparse_layers"], prunable - 2);
  ASSERT_TRUE(rows.count("conv1"));
  EXPECT_FALSE(rows.at("conv1")["sparse"].get<bool>());
  // The dense stem reads the 3-channel input and feeds sparse convolutions:
  // it runs on the direct path, and only it does.
  EXPECT_TRUE(rows.at("conv1")["direct"].get<bool>());
  for (const auto& [name, l] : rows) {
    if (name == "conv1") continue;
    EXPECT_FALSE(l["direct"].get<bool>()) << name;
  }
}

TEST(BenchModelCli, DenseKernelsAndOtherDistributions) {
  const RunResult r =
      run(std::string(kTinyModel) +
          " --model lenet5 --sparsity 0.5 --kernels dense --distribution erk --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const auto rows = expect_model(j, "lenet5", 0.5);
  EXPECT_EQ(j["kernels"], "dense");
  EXPECT_EQ(j["distribution"], "erk");
  EXPECT_EQ(j["sparse_layers"], 0);
  for (const auto& [name, l] : rows) EXPECT_FALSE(l["sparse"].get<bool>()) << name;
}

TEST(BenchModelCli, TablePrintsLayersAndPhases) {
  const RunResult r = run(std::string(kTinyModel) + " --model lenet5 --sparsity 0.9", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("bench model: lenet5, batch 4", 0), 0u) << r.out;
  for (const char* word : {"step", "forward", "backward", "optimizer", "loss", "conv1", "conv2",
                           "fc1", "fc2", "fc3", "speed-up"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing in " << r.out;
}

TEST(BenchModelCli, BadFlagsAreNamed) {
  expect_error("bench model --model vgg16", "--model");
  expect_error("bench model --sparsity 1.5", "--sparsity");
  expect_error("bench model --distribution gaussian", "--distribution");
  expect_error("bench model --kernels fast", "--kernels");
  expect_error("bench model --steps 0", "--steps");
  expect_error("bench model --batch 0", "--batch");
  expect_error("bench model --epochs 3", "--epochs");
}

TEST(BenchCli, NeedsASubcommand) {
  const RunResult r = run("bench", true);
  EXPECT_NE(r.exit_code, 0) << r.out;
}

}  // namespace
