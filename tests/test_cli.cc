// The command-line program end to end: bad input of every kind gives a
// one-line error naming the problem and a non-zero exit, never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/cli_runner.h"

namespace {

namespace fs = std::filesystem;

using sparsetrain::testing::RunResult;

// stdout and stderr together.
RunResult run(const std::string& args) { return sparsetrain::testing::run_cli(args, true); }

fs::path temp_dir(const std::string& name) {
  return sparsetrain::testing::fresh_temp_dir("sparsetrain_cli_", name);
}

std::string data_dir() { return SPARSETRAIN_TEST_DATA_DIR; }

// A trained MLP checkpoint shared by the tests below.
class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_dir_ = temp_dir("run");
    const RunResult r =
        run("train --model mlp --dataset mnist --epochs 1 --train-limit 512 --test-limit 200"
            " --threads 2 --no-progress --data-dir " +
            data_dir() + " --out " + run_dir_.string() + " --metrics " +
            (run_dir_ / "m.jsonl").string());
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  static fs::path checkpoint() { return run_dir_ / "checkpoint.safetensors"; }
  static fs::path run_dir_;
};
fs::path Cli::run_dir_;

void expect_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "missing '" << needle << "' in: " << r.out;
}

TEST_F(Cli, TrainPrintsTableAndWritesMetrics) {
  std::ifstream f(run_dir_ / "m.jsonl");
  std::string last, line;
  while (std::getline(f, line)) last = line;
  EXPECT_NE(last.find("\"event\":\"end\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"test_accuracy\""), std::string::npos);
  EXPECT_NE(last.find("\"params_nonzero\""), std::string::npos);
  EXPECT_NE(last.find("\"epoch_seconds\""), std::string::npos);
}

TEST_F(Cli, EvalReportsPerClassAccuracy) {
  const RunResult r =
      run("eval --checkpoint " + checkpoint().string() + " --limit 300 --data-dir " + data_dir());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos);
  EXPECT_NE(r.out.find("9"), std::string::npos);
}

TEST_F(Cli, UnknownOptionIsNamed) { expect_error(run("train --bogus-flag 3"), "--bogus-flag"); }

// Parse errors of the option parser itself end like every other bad input:
// exit code 1 and one line naming the option.
TEST_F(Cli, ParseErrorsExitOneWithOneLine) {
  for (const char* args : {"train --bogus-flag 3", "train --epochs x", "bench conv --k abc"}) {
    const RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << ": " << r.out;
    EXPECT_NE(r.out.find("sparsetrain: error:"), std::string::npos) << r.out;
  }
}

TEST_F(Cli, UnknownModelIsNamed) {
  expect_error(run("train --model vgg99 --data-dir " + data_dir()), "vgg99");
}

TEST_F(Cli, UnknownDatasetIsNamed) {
  expect_error(run("train --dataset imagenet --data-dir " + data_dir()), "imagenet");
}

TEST_F(Cli, BadValueIsNamed) {
  expect_error(run("train --epochs 0 --data-dir " + data_dir()), "--epochs");
  expect_error(run("train --batch-size -3 --data-dir " + data_dir()), "--batch-size");
}

TEST_F(Cli, TruncatedDatasetNamesTheFile) {
  const fs::path d = temp_dir("truncated") / "mnist";
  fs::create_directories(d);
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    fs::copy_file(fs::path(data_dir()) / "mnist" / f, d / f);
  }
  fs::resize_file(d / "train-images-idx3-ubyte.gz", 100000);
  expect_error(run("train --model mlp --data-dir " + d.parent_path().string()),
               "train-images-idx3-ubyte");
}

TEST_F(Cli, CorruptCheckpointNamesTheFile) {
  const fs::path d = temp_dir("corrupt");
  const fs::path bad = d / "garbage.safetensors";
  std::ofstream(bad) << "this is not a checkpoint at all";
  expect_error(run("eval --checkpoint " + bad.string() + " --data-dir " + data_dir()),
               "garbage.safetensors");

  const fs::path cut = d / "cut.safetensors";
  fs::copy_file(checkpoint(), cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  expect_error(run("eval --checkpoint " + cut.string() + " --data-dir " + data_dir()),
               "cut.safetensors");

  const fs::path missing = d / "nothing.safetensors";
  expect_error(run("eval --checkpoint " + missing.string() + " --data-dir " + data_dir()),
               "nothing.safetensors");
}

TEST_F(Cli, ResumeFromCorruptCheckpointFails) {
  const fs::path d = temp_dir("resume_corrupt");
  std::ofstream(d / "checkpoint.safetensors") << std::string(64, '\xff');
  expect_error(run("train --model mlp --data-dir " + data_dir() + " --resume " + d.string()),
               "checkpoint.safetensors");
}

TEST_F(Cli, DatasetThatDoesNotFitTheModel) {
  expect_error(run("eval --checkpoint " + checkpoint().string() +
                   " --dataset cifar10 --limit 10 --data-dir " + data_dir()),
               "does not fit");
}

TEST_F(Cli, DivergingLossStopsWithAClearMessage) {
  const fs::path d = temp_dir("nan");
  fs::copy_file(checkpoint(), d / "checkpoint.safetensors");
  const auto before = fs::file_size(d / "checkpoint.safetensors");
  const RunResult r = run(
      "train --model mlp --lr 100000 --train-limit 640 --test-limit 100 --no-progress --data-dir " +
      data_dir() + " --out " + d.string() + " --force");
  expect_error(r, "the loss is");
  EXPECT_EQ(fs::file_size(d / "checkpoint.safetensors"), before);
}

// Issue 16, finding 1: `prune --out` at the source run's folder replaced its
// training checkpoint (optimizer state lost, --resume then failed). Now it
// is refused, even with --force, and the run still resumes; another run's
// checkpoint is replaced only with --force, and `train --out` likewise.
TEST_F(Cli, NoCommandOverwritesAnotherRunsCheckpoint) {
  const fs::path d = temp_dir("keep");
  fs::copy_file(checkpoint(), d / "checkpoint.safetensors");
  const std::string bytes = [&] {
    std::ifstream in(d / "checkpoint.safetensors", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const auto unchanged = [&] {
    std::ifstream in(d / "checkpoint.safetensors", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {}) == bytes;
  };
  const std::string prune = "prune --checkpoint " + d.string() + " --sparsity 0.5 --no-eval --out ";
  for (const std::string force : {"", " --force"}) {
    expect_error(run(prune + d.string() + force), "is the checkpoint this command reads");
    EXPECT_TRUE(unchanged()) << force;
  }
  const RunResult resumed =
      run("train --model mlp --epochs 2 --train-limit 512 --test-limit 200 --threads 2 "
          "--no-progress --data-dir " +
          data_dir() + " --resume " + d.string() + " --out " + d.string() + " --max-steps 12");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out;

  const fs::path other = temp_dir("other");
  fs::copy_file(checkpoint(), other / "checkpoint.safetensors");
  expect_error(run(prune + other.string()), "--force");
  const RunResult forced = run(prune + other.string() + " --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.out;
  EXPECT_NE(forced.out.find("the original, with optimizer state"), std::string::npos) << forced.out;
  // Pruning the pruned file: its source has no optimizer state to speak of.
  const fs::path third = temp_dir("third");
  const RunResult again = run("prune --checkpoint " + other.string() +
                              " --sparsity 0.6 --no-eval --out " + third.string());
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(again.out.find("optimizer state"), std::string::npos) << again.out;

  const fs::path run_dir = temp_dir("train-over");
  fs::copy_file(checkpoint(), run_dir / "checkpoint.safetensors");
  expect_error(run("train --model mlp --train-limit 512 --test-limit 50 --no-progress --data-dir " +
                   data_dir() + " --out " + run_dir.string()),
               "--force");
  expect_error(run("train --model mlp --train-limit 512 --test-limit 50 --no-progress --data-dir " +
                   data_dir() + " --init-from " + run_dir.string() + " --retrain finetune --out " +
                   run_dir.string() + " --force"),
               "is the checkpoint this command reads");
}

// Issue 16, finding 4: a legal folder name that is not UTF-8 could not be
// used at all (nlohmann's type_error escaped). Now a run trains into it,
// evaluates, prunes into another, and fine-tunes from that one.
TEST_F(Cli, FoldersWhoseNamesAreNotUtf8Work) {
  const fs::path base = temp_dir("utf8");
  const std::string run_dir = (base / "run\xff").string();
  const std::string common =
      " --model mlp --train-limit 512 --test-limit 100 --threads 2 "
      "--no-progress --data-dir " +
      data_dir();
  const std::string quoted = "'" + run_dir + "'";
  RunResult r = run("train" + common + " --out " + quoted + " --metrics " + quoted + "/m.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run("eval --checkpoint " + quoted + " --limit 100 --json --data-dir " + data_dir());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"accuracy\""), std::string::npos) << r.out;
  r = run("prune --checkpoint " + quoted + " --sparsity 0.5 --no-eval --out " + quoted + "-p");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run("train" + common + " --init-from " + quoted + "-p --retrain finetune --out " + quoted +
          "-ft");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fs::exists(fs::path(run_dir + "-ft") / "checkpoint.safetensors"));
}

// Issue 16, finding 6: the smaller ones.
TEST_F(Cli, SmallerHardeningFindings) {
  const std::string common =
      " --model mlp --train-limit 512 --test-limit 100 --no-progress --data-dir " + data_dir();
  // --max-steps 0 ran a step; --threads far beyond any machine was taken by
  // eval and prune.
  expect_error(run("train" + common + " --max-steps 0"), "--max-steps");
  expect_error(run("eval --checkpoint " + checkpoint().string() + " --threads 10000"), "--threads");
  expect_error(run("prune --checkpoint " + checkpoint().string() +
                   " --sparsity 0.5 --threads 10000 --out " + temp_dir("p").string()),
               "--threads");
  // A second YAML document was silently ignored.
  const fs::path recipe = temp_dir("multi") / "r.yaml";
  std::ofstream(recipe) << "model: mlp\n---\nmodel: lenet5\n";
  expect_error(run("train --recipe " + recipe.string()), "line 3: a second YAML document");
  // A one-cycle schedule too short to rise named a flag that does not exist.
  const RunResult short_run = run("train --model mlp --train-limit 64 --no-progress --data-dir " +
                                  data_dir() + " --out " + temp_dir("short").string());
  expect_error(short_run, "--lr-schedule onecycle");
  EXPECT_EQ(short_run.out.find("pct-start"), std::string::npos) << short_run.out;
  // A write killed half-way left checkpoint.safetensors.tmp.<pid> forever.
  const fs::path dir = temp_dir("stale");
  std::ofstream(dir / "checkpoint.safetensors.tmp.4194300") << "half";
  std::ofstream(dir / "notes.tmp.txt") << "not ours";
  const RunResult r = run("train" + common + " --max-steps 3 --out " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_FALSE(fs::exists(dir / "checkpoint.safetensors.tmp.4194300"));
  EXPECT_TRUE(fs::exists(dir / "notes.tmp.txt"));
  // eval takes the run's own data folder when not given one.
  const RunResult e = run("eval --checkpoint " + checkpoint().string() + " --limit 50");
  EXPECT_EQ(e.exit_code, 0) << e.out;
}

TEST_F(Cli, InfoAndHelpWork) {
  const RunResult info = run("info");
  EXPECT_EQ(info.exit_code, 0) << info.out;
  EXPECT_NE(info.out.find("oneDNN"), std::string::npos) << info.out;
  for (const char* cmd : {"train --help", "eval --help", "info --help", "--help"}) {
    const RunResult h = run(cmd);
    EXPECT_EQ(h.exit_code, 0) << cmd << ": " << h.out;
  }
  expect_error(run(""), "");
}

}  // namespace
