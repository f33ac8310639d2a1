// Class subsets (issue 23): `--classes 0-4` / `5,6,7,8,9` keep those classes
// of a dataset, relabelled 0..k-1 in the order given, with their names, on
// `train`, `eval` and in checkpoints; bad lists are refused naming the
// problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

void expect_error_with(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Classes, ListsAndRanges) {
  EXPECT_EQ(parse_class_list("0-4", 10), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(parse_class_list("5,6,7,8,9", 10), (std::vector<int>{5, 6, 7, 8, 9}));
  EXPECT_EQ(parse_class_list("3, 0-2", 10), (std::vector<int>{3, 0, 1, 2}));
  EXPECT_EQ(parse_class_list("9-7", 10), (std::vector<int>{9, 8, 7}));
  EXPECT_EQ(parse_class_list("4", 10), (std::vector<int>{4}));
}

TEST(Classes, BadListsAreRefusedNamingTheProblem) {
  expect_error_with([] { parse_class_list("8-10", 10); },
                    "--classes '8-10': class 10 is out of range (the dataset has classes 0..9)");
  expect_error_with([] { parse_class_list("1,2,1", 10); }, "class 1 is given twice");
  expect_error_with([] { parse_class_list("0-4,3", 10); }, "class 3 is given twice");
  expect_error_with([] { parse_class_list("", 10); }, "an empty class list");
  expect_error_with([] { parse_class_list(" , ", 10); }, "an empty class list");
  expect_error_with([] { parse_class_list("1,,2", 10); }, "an empty item");
  expect_error_with([] { parse_class_list("cat", 10); },
                    "'cat' is not a class number or a range like 0-4");
  expect_error_with([] { parse_class_list("-1", 10); }, "'-1' is not a class number");
  expect_error_with([] { parse_class_list("1-", 10); }, "'1-' is not a class number");
}

TEST(Classes, SelectRelabelsInTheOrderGiven) {
  Dataset d;
  d.name = "toy";
  d.channels = 1;
  d.height = 1;
  d.width = 2;
  d.num_classes = 4;
  d.class_names = {"a", "b", "c", "d"};
  d.mean = {0.5f};
  d.stddev = {0.25f};
  d.labels = {0, 1, 2, 3, 2, 0};
  d.pixels = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5};  // sample i holds i, i
  const Dataset s = select_classes(d, {2, 0});
  EXPECT_EQ(s.num_classes, 2);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(s.labels, (std::vector<int32_t>{1, 0, 0, 1}));  // samples 0, 2, 4, 5
  EXPECT_EQ(s.pixels, (std::vector<uint8_t>{0, 0, 2, 2, 4, 4, 5, 5}));
  EXPECT_EQ(s.mean, d.mean);
  EXPECT_EQ(s.stddev, d.stddev);
  const Dataset head = select_classes(d, {2, 0}, 3);
  EXPECT_EQ(head.labels, (std::vector<int32_t>{1, 0, 0}));
  expect_error_with([&] { select_classes(d, {4}); }, "class 4 is out of range");
  expect_error_with([&] { select_classes(d, {1, 1}); }, "class 1 is given twice");
}

TEST(Classes, RealMnistSubsetHoldsExactlyThoseSamples) {
  if (!fs::exists(kDataDir + "/mnist")) GTEST_SKIP() << "no MNIST in " << kDataDir;
  const Dataset all = load_dataset("mnist", kDataDir, Split::kTest);
  const Dataset upper = load_dataset("mnist", kDataDir, Split::kTest, -1, "5-9");
  std::map<int, int64_t> count;
  for (const int32_t l : all.labels) ++count[l];
  EXPECT_EQ(upper.size(), count[5] + count[6] + count[7] + count[8] + count[9]);
  EXPECT_EQ(upper.class_names, (std::vector<std::string>{"5", "6", "7", "8", "9"}));
  EXPECT_EQ(upper.num_classes, 5);
  // The first kept sample is the first of class 5..9 in the file, labelled
  // by its position in the list.
  const auto first =
      std::find_if(all.labels.begin(), all.labels.end(), [](int32_t l) { return l >= 5; });
  EXPECT_EQ(upper.labels[0], *first - 5);
  EXPECT_TRUE(std::equal(upper.pixels.begin(), upper.pixels.begin() + 784,
                         all.pixels.begin() + (first - all.labels.begin()) * 784));
  // The limit counts kept samples.
  EXPECT_EQ(load_dataset("mnist", kDataDir, Split::kTest, 100, "5-9").size(), 100);
}

TEST(Classes, TrainAndEvalFromTheCommandLine) {
  if (!fs::exists(kDataDir + "/mnist")) GTEST_SKIP() << "no MNIST in " << kDataDir;
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_classes_", "cli");
  const auto run = [](const std::string& args) { return testing::run_cli(args, true); };
  const std::string common = " --model mlp --dataset mnist --data-dir " + kDataDir +
                             " --train-limit 1000 --test-limit 500 --no-progress --threads 2";
  const auto r = run("train" + common + " --classes 7,3 --out " + (dir / "run").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("dataset mnist classes 7,3 (7, 3)"), std::string::npos) << r.out;

  // eval uses the run's classes by default and names them.
  const auto e = testing::run_cli("eval --checkpoint " + (dir / "run").string() + " --json", false);
  ASSERT_EQ(e.exit_code, 0) << e.out;
  const auto j = nlohmann::json::parse(e.out);
  EXPECT_EQ(j["classes"], nlohmann::json({"7", "3"}));
  EXPECT_GT(j["accuracy"].get<double>(), 0.9);  // two digits apart: far above chance (0.5)
  EXPECT_EQ(j["per_class"].size(), 2u);

  const auto refused = [&](const std::string& args, const std::string& needle) {
    const auto b = run(args);
    EXPECT_EQ(b.exit_code, 1) << b.out;
    EXPECT_NE(b.out.find(needle), std::string::npos) << b.out;
  };
  refused("eval --checkpoint " + (dir / "run").string() + " --classes 0-9",
          "the model has 2 outputs but the evaluated data has 10 classes (--classes 0-9)");
  refused("train" + common + " --classes 3,10", "--classes '3,10': class 10 is out of range");
  refused("train" + common + " --classes 3,3", "class 3 is given twice");
  refused("train" + common + " --classes ,", "an empty class list");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sparsetrain
