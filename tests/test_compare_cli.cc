// `sparsetrain compare` end to end: small MNIST runs of two recipes and two
// seeds each, the JSON it writes, the report page opened in Debian's
// headless Chromium (no console message, every section, plot and image
// there, a screenshot saved), and bad input named on one line.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli_runner.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

class CompareCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::fresh_temp_dir("sparsetrain_compare_", "cli"));
    for (const char* run : {"dense0", "dense1", "sparse0", "sparse1"}) {
      const std::string name = run;
      const std::string seed = name.substr(name.size() - 1);
      const std::string sparsity = name.rfind("sparse", 0) == 0 ? " --sparsity 0.8" : "";
      const auto r = testing::run_cli(
          "train --model mlp --dataset mnist --data-dir " + kDataDir +
              " --train-limit 3000 --test-limit 100 --epochs 1 --no-progress --threads 2 --seed " +
              seed + sparsity + " --out " + (*dir_ / run).string(),
          true);
      ASSERT_EQ(r.exit_code, 0) << r.out;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string run(const std::string& name) { return (*dir_ / name).string(); }
  static std::string groups() {
    return " --model-group dense=" + run("dense0") + "," + run("dense1") +
           " --model-group sparse80=" + run("sparse0") + "," + run("sparse1") + " --data-dir " +
           kDataDir;
  }
  static fs::path* dir_;
};
fs::path* CompareCli::dir_ = nullptr;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(CompareCli, WritesTheResultsAndAPageThatOpensInChromium) {
  const fs::path out = *dir_ / "report";
  const auto r = testing::run_cli("compare" + groups() +
                                      " --limit 600 --robust-limit 200 --k 10 --threads 2 --out " +
                                      out.string(),
                                  true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("sparse80"), std::string::npos) << r.out;
  const json j = json::parse(read(out / "compare.json"));
  EXPECT_EQ(j["dataset"]["samples"], 600);
  EXPECT_EQ(j["models"].size(), 4u);
  EXPECT_EQ(j["groups"].size(), 2u);
  EXPECT_FALSE(j["groups"][1]["pies"].is_null()) << "two seeds a group give PIEs";
  EXPECT_EQ(j["embeddings"].size(), 3u);
  EXPECT_EQ(j["noise_levels"].size(), 15u);
  EXPECT_EQ(j["potentials"].size(), 1u + 14u + 5u);  // clean, 14 noise levels, 5 corruptions
  EXPECT_NEAR(j["models"][2]["sparsity"].get<double>(), 0.8, 0.05);
  EXPECT_EQ(j["groups"][0]["reliability"].size(), 15u);

  // Self-contained: no file or address is fetched.
  const std::string page = read(out / "report.html");
  EXPECT_EQ(page.find("<script src"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(page.find("url("), std::string::npos);

  // The page in a real browser.
  const auto which = testing::run_shell("command -v chromium");
  ASSERT_EQ(which.exit_code, 0)
      << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::string chromium =
      "chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" +
      (*dir_ / "profile").string() + " ";
  const std::string url = "file://" + fs::absolute(out / "report.html").string();
  const auto dom = testing::run_shell(chromium + "--dump-dom " + url + " 2>/dev/null");
  ASSERT_EQ(dom.exit_code, 0);
  EXPECT_NE(dom.out.find("data-ready=\"1\""), std::string::npos)
      << "the page's script did not finish";
  for (const char* id :
       {"models", "reference", "classes", "pies", "embeddings", "robustness", "potential"})
    EXPECT_NE(dom.out.find(std::string("<section id=\"") + id + "\""), std::string::npos) << id;
  const std::size_t charts = dom.out.find("data-charts=\"");
  ASSERT_NE(charts, std::string::npos);
  // Reliability, Jaccard, a PCA scatter per group, noise, 5 corruptions, prune potential.
  EXPECT_EQ(std::stoi(dom.out.substr(charts + 13)), 11);
  std::size_t images = 0;
  for (std::size_t at = dom.out.find("<img"); at != std::string::npos;
       at = dom.out.find("<img", at + 1))
    ++images;
  EXPECT_GE(images, 2u * 2u * 10u * (1 + 2 * 6))
      << "dominoes: 2 parts x 10 samples x 13 images, twice";
  const fs::path shot = *dir_ / "report.png";
  const auto console = testing::run_shell(
      chromium + "--enable-logging=stderr --v=0 --window-size=1280,9000 --screenshot=" +
      shot.string() + " " + url + " 2>&1");
  EXPECT_EQ(console.out.find("CONSOLE"), std::string::npos) << console.out;
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 100000u);
  // Kept for a person to look at.
  const fs::path kept = fs::temp_directory_path() / "sparsetrain-compare-report.png";
  fs::copy_file(shot, kept, fs::copy_options::overwrite_existing);
  std::printf("screenshot: %s\n", kept.c_str());
}

TEST_F(CompareCli, BadInputIsNamedOnOneLine) {
  const fs::path empty = *dir_ / "no-checkpoint";
  fs::create_directories(empty);
  const std::string lenet = (*dir_ / "lenet").string();
  const auto t = testing::run_cli(
      "train --model lenet5 --dataset mnist --data-dir " + kDataDir +
          " --train-limit 200 --test-limit 50 --epochs 1 --no-progress --out " + lenet,
      true);
  ASSERT_EQ(t.exit_code, 0) << t.out;
  const std::string out = " --limit 100 --robust-limit 0 --k 5 --out " + (*dir_ / "bad").string();
  const struct {
    std::string args, says;
  } cases[] = {
      {groups() + " --layer nope", "no node 'nope'"},
      {" --model-group dense=" + empty.string() + " --data-dir " + kDataDir,
       "has no checkpoint.safetensors"},
      {" --model-group dense=" + run("dense0") + " --model-group lenet=" + lenet + " --data-dir " +
           kDataDir,
       "compare needs one model architecture"},
      {" --model-group dense" + std::string(" --data-dir ") + kDataDir, "expected NAME=RUN"},
      {groups() + " --corruptions fog", "unknown corruption 'fog'"},
      {groups() + " --metric manhattan", "--metric must be cosine or euclidean"},
      {" --model-group a=" + run("dense0") + " --model-group a=" + run("dense1"),
       "two groups are named 'a'"},
  };
  for (const auto& c : cases) {
    const auto r = testing::run_cli("compare" + c.args + out, true);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
    const std::string last = r.out.substr(r.out.rfind("sparsetrain: error"));
    EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 1) << r.out;
  }
}

}  // namespace
}  // namespace sparsetrain
