// The fixture of the transfer tests (test_transfer.cc, test_linear_probe.cc,
// test_sparse_head.cc): an MLP trained 80% sparse on MNIST digits 0-4, once
// per test program, as the upstream of runs on digits 5-9.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"
#include "sparsetrain/transfer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

// The logical (dense) values of a parameter, pruned positions 0.
[[maybe_unused]] std::vector<float> dense_values(const Parameter& p) {
  if (!p.compressed()) return std::vector<float>(p.value.data(), p.value.data() + p.value.numel());
  std::vector<float> out(static_cast<size_t>(Tensor::count(p.dense_shape)), 0.0f);
  for (size_t k = 0; k < p.dense_index.size(); ++k) out[p.dense_index[k]] = p.value[k];
  return out;
}

[[maybe_unused]] std::map<std::string, std::vector<float>> values_by_name(Graph& g) {
  std::map<std::string, std::vector<float>> out;
  for (Parameter* p : g.parameters()) out[p->name] = dense_values(*p);
  return out;
}

class Transfer : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    if (!fs::exists(kDataDir + "/mnist")) return;
    root_ = testing::fresh_temp_dir("sparsetrain_transfer_", "suite");
    TrainOptions up = recommended_options("mlp");
    up.dataset = "mnist";
    up.data_dir = kDataDir;
    up.classes = "0-4";
    up.train_limit = 2000;
    up.test_limit = 500;
    up.epochs = 1;
    up.sparsity = 0.8f;
    up.kernels = "sparse";
    up.threads = 2;
    up.seed = 3;
    up.progress = false;
    up.out_dir = (root_ / "upstream").string();
    std::ostringstream log;
    Trainer(up, zoo_factory()).run(log);
  }
  void SetUp() override {
    if (!fs::exists(kDataDir + "/mnist")) GTEST_SKIP() << "no MNIST in " << kDataDir;
  }
  static std::string upstream() { return (root_ / "upstream").string(); }
  static TrainOptions downstream(const std::string& name, const std::string& mode = "full") {
    TrainOptions o = finetune_options(upstream(), mode);
    o.classes = "5-9";
    o.lr = 0.02f;
    o.lr_schedule = "constant";
    o.progress = false;
    o.out_dir = (root_ / name).string();
    return o;
  }
  static fs::path root_;
};
fs::path Transfer::root_;

}  // namespace
}  // namespace sparsetrain
