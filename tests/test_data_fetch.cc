// `sparsetrain data fetch` and `data list`, and where datasets are looked
// for. Downloads go only to a loopback server started here
// (tests/data_server.py), serving copies of ../shared/data's official MNIST
// files whole, cut, corrupted, truncated, without ranges, or not at all.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "data/fetch_internal.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/fetch.h"

extern char** environ;

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using testing::RunResult;

const fs::path kDataDir = SPARSETRAIN_TEST_DATA_DIR;
const std::vector<std::string> kMnistFiles = {
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz"};

fs::path temp_dir(const std::string& name) {
  return testing::fresh_temp_dir("sparsetrain_fetch_", name);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The loopback server, one for the whole suite.
class DataFetch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::is_directory(kDataDir / "mnist")) return;
    root_ = temp_dir("server_root");
    fs::create_directory_symlink(fs::absolute(kDataDir / "mnist"), root_ / "mnist");
    write_text(root_ / "cifar-10-binary.tar.gz", "not the official archive");
    log_ = root_.parent_path() / ("sparsetrain_fetch_server_log_" + std::to_string(::getpid()));
    fs::remove(log_);
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string script = std::string(SPARSETRAIN_TESTS_DIR) + "/data_server.py";
    const std::string root = root_.string(), log = log_.string();
    std::vector<const char*> argv = {"python3", script.c_str(), "--root", root.c_str(),
                                     "--log",   log.c_str(),    nullptr};
    const int rc = ::posix_spawnp(&server_pid_, "python3", &actions, nullptr,
                                  const_cast<char* const*>(argv.data()), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ASSERT_EQ(rc, 0) << "cannot start python3 (scripts/install-deps.sh installs it)";
    FILE* f = ::fdopen(out[0], "r");
    int port = 0;
    ASSERT_EQ(std::fscanf(f, "%d", &port), 1) << "the test server printed no port";
    std::fclose(f);
    base_ = "http://127.0.0.1:" + std::to_string(port);
  }
  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      ::waitpid(server_pid_, nullptr, 0);
    }
    if (!root_.empty()) fs::remove_all(root_);
    if (!log_.empty()) fs::remove(log_);
  }
  void SetUp() override {
    if (base_.empty()) GTEST_SKIP() << "no mnist folder in " << kDataDir;
    fs::remove(log_);
  }
  static std::string url(const std::string& mode) { return base_ + "/" + mode + "/mnist"; }
  static std::string server_log() { return read_text(log_); }
  // The CLI with a clean data environment: HOME is an empty folder, so the
  // user cache is empty, and no $SPARSETRAIN_DATA or mirror is set.
  static RunResult cli(const std::string& args, const std::string& env = "") {
    static const fs::path home = temp_dir("home");
    return testing::run_shell(
        "env -u SPARSETRAIN_DATA -u SPARSETRAIN_DATA_MIRROR -u "
        "XDG_CACHE_HOME HOME=" +
        home.string() + " " + env + " " + std::string(SPARSETRAIN_BINARY) + " " + args + " 2>&1");
  }
  static RunResult fetch(const fs::path& dir, const std::string& mode,
                         const std::string& extra = "") {
    return cli("data fetch mnist --no-progress --dir " + dir.string() + " --mirror " + url(mode) +
               " " + extra);
  }
  static void expect_whole_mnist(const fs::path& dir) {
    for (const std::string& f : kMnistFiles) {
      EXPECT_EQ(read_text(dir / "mnist" / f), read_text(kDataDir / "mnist" / f)) << f;
      EXPECT_FALSE(fs::exists(dir / "mnist" / (f + ".part"))) << f;
    }
  }

  static fs::path root_, log_;
  static std::string base_;
  static pid_t server_pid_;
};
fs::path DataFetch::root_, DataFetch::log_;
std::string DataFetch::base_;
pid_t DataFetch::server_pid_ = -1;

void expect_failure(const RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, needle)) << "missing '" << needle << "' in:\n" << r.out;
}

TEST_F(DataFetch, FetchesVerifiesAndSkipsWhatIsThere) {
  const fs::path dir = temp_dir("whole");
  const RunResult r = fetch(dir, "good");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_mnist(dir);
  EXPECT_TRUE(contains(r.out, "9912422 bytes, MD5 ok")) << r.out;
  EXPECT_TRUE(contains(r.out, "mnist: ready in " + (dir / "mnist").string())) << r.out;

  fs::remove(log_);
  const RunResult again = fetch(dir, "good");
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_TRUE(contains(again.out, "train-images-idx3-ubyte.gz: already here, MD5 ok")) << again.out;
  EXPECT_EQ(server_log(), "") << "verified files were downloaded again";
}

TEST_F(DataFetch, FetchedMnistTrainsWithDataDirAndWithEnvironment) {
  const fs::path dir = temp_dir("train");
  ASSERT_EQ(fetch(dir, "good").exit_code, 0);
  const std::string train =
      "train --model mlp --dataset mnist --epochs 1 --train-limit 1000 --test-limit 500 "
      "--threads 2 --no-progress";
  const RunResult with_flag = cli(train + " --data-dir " + dir.string());
  ASSERT_EQ(with_flag.exit_code, 0) << with_flag.out;
  EXPECT_TRUE(contains(with_flag.out, "dataset mnist from " + (dir / "mnist").string()))
      << with_flag.out;
  const RunResult with_env = cli(train, "SPARSETRAIN_DATA=" + dir.string());
  ASSERT_EQ(with_env.exit_code, 0) << with_env.out;
  EXPECT_TRUE(contains(with_env.out, "dataset mnist from " + (dir / "mnist").string()))
      << with_env.out;
  // One epoch on 1000 images learns something (10% is chance).
  const size_t at = with_env.out.find("final test accuracy: ");
  ASSERT_NE(at, std::string::npos) << with_env.out;
  EXPECT_GT(std::stod(with_env.out.substr(at + 21)), 60.0) << with_env.out;
}

TEST_F(DataFetch, MirrorFromTheEnvironment) {
  const fs::path dir = temp_dir("env_mirror");
  const RunResult r = cli("data fetch mnist --no-progress --dir " + dir.string(),
                          "SPARSETRAIN_DATA_MIRROR=" + url("good"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_mnist(dir);
  EXPECT_TRUE(contains(server_log(), "good mnist/train-images-idx3-ubyte.gz -")) << server_log();
}

TEST_F(DataFetch, DefaultFolderIsSparsetrainDataThenUserCache) {
  const fs::path dir = temp_dir("env_dir");
  const RunResult r = cli("data fetch mnist --no-progress --mirror " + url("good"),
                          "SPARSETRAIN_DATA=" + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_mnist(dir);

  const fs::path cache = temp_dir("xdg");
  const RunResult c = cli("data fetch mnist --no-progress --mirror " + url("good"),
                          "XDG_CACHE_HOME=" + cache.string());
  ASSERT_EQ(c.exit_code, 0) << c.out;
  expect_whole_mnist(cache / "sparsetrain" / "data");
}

TEST_F(DataFetch, NotFoundIsNamedAndLeavesNothing) {
  const fs::path dir = temp_dir("404");
  const RunResult r = cli("data fetch mnist --no-progress --dir " + dir.string() + " --mirror " +
                          base_ + "/good/nowhere");
  expect_failure(r, "HTTP 404 from " + base_ + "/good/nowhere/train-images-idx3-ubyte.gz");
  EXPECT_TRUE(contains(r.out, "mnist: train-images-idx3-ubyte.gz: could not be downloaded"))
      << r.out;
  EXPECT_TRUE(fs::is_empty(dir / "mnist"));
}

TEST_F(DataFetch, ChecksumMismatchRemovesTheDownload) {
  const fs::path dir = temp_dir("corrupt");
  const RunResult r = fetch(dir, "corrupt");
  expect_failure(r, "checksum mismatch");
  EXPECT_TRUE(contains(r.out, "the official file's is f68b3c2dcbeaaa9fbdd348bbdeb94873")) << r.out;
  EXPECT_TRUE(fs::is_empty(dir / "mnist"));
}

TEST_F(DataFetch, TruncatedCopyIsRejected) {
  const fs::path dir = temp_dir("short");
  const RunResult r = fetch(dir, "short");
  expect_failure(r, "the official one has 9912422 (a truncated copy?)");
  EXPECT_TRUE(fs::is_empty(dir / "mnist"));
}

TEST_F(DataFetch, TransferCutOnceIsResumedWithARange) {
  const fs::path dir = temp_dir("cutonce");
  const RunResult r = fetch(dir, "cutonce");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_mnist(dir);
  EXPECT_TRUE(contains(r.out, "ended after 4956211 of 9912422 bytes")) << r.out;
  EXPECT_TRUE(contains(server_log(), "mnist/train-images-idx3-ubyte.gz bytes=4956211-"))
      << server_log();
}

TEST_F(DataFetch, TransferAlwaysCutKeepsThePartAndARerunResumes) {
  const fs::path dir = temp_dir("cut");
  const RunResult r = fetch(dir, "cut");
  expect_failure(r, "run again to resume");
  EXPECT_TRUE(contains(r.out, "tried 3 times")) << r.out;
  const fs::path part = dir / "mnist" / "train-images-idx3-ubyte.gz.part";
  ASSERT_TRUE(fs::exists(part));
  EXPECT_FALSE(fs::exists(dir / "mnist" / "train-images-idx3-ubyte.gz"));
  const auto kept = fs::file_size(part);
  EXPECT_GT(kept, 0u);

  fs::remove(log_);
  const RunResult rerun = fetch(dir, "good");
  ASSERT_EQ(rerun.exit_code, 0) << rerun.out;
  expect_whole_mnist(dir);
  EXPECT_TRUE(contains(server_log(),
                       "good mnist/train-images-idx3-ubyte.gz bytes=" + std::to_string(kept) + "-"))
      << server_log();
}

TEST_F(DataFetch, ServerWithoutRangesRestartsFromZero) {
  const fs::path dir = temp_dir("norange");
  write_text(dir / "mnist" / "train-images-idx3-ubyte.gz.part", "stale prefix");
  const RunResult r = fetch(dir, "norange");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "does not resume downloads, restarting")) << r.out;
  expect_whole_mnist(dir);
}

TEST_F(DataFetch, NoServerSaysSo) {
  const fs::path dir = temp_dir("nonet");
  // Port 9 (discard) has no listener on a test machine.
  const RunResult r = cli("data fetch mnist --no-progress --dir " + dir.string() +
                          " --mirror http://127.0.0.1:9/mnist");
  expect_failure(r, "cannot reach the server");
  EXPECT_TRUE(fs::is_empty(dir / "mnist"));
}

TEST_F(DataFetch, WriteFailureIsNamedAndKeepsWhatWasWritten) {
  const fs::path dir = temp_dir("full");
  // A 1 MiB file-size limit stands in for a full disk: writes past it fail
  // (SIGXFSZ ignored, so the write returns EFBIG).
  const RunResult r = testing::run_shell("bash -c \"trap '' XFSZ; ulimit -f 1024; exec " +
                                         std::string(SPARSETRAIN_BINARY) +
                                         " data fetch mnist --no-progress --dir " + dir.string() +
                                         " --mirror " + url("good") + "\" 2>&1");
  expect_failure(r, "train-images-idx3-ubyte.gz.part: cannot write (File too large)");
  EXPECT_TRUE(contains(r.out, "run again to resume")) << r.out;
  EXPECT_FALSE(fs::exists(dir / "mnist" / "train-images-idx3-ubyte.gz"));
}

TEST_F(DataFetch, CifarArchiveThatIsNotTheOfficialOneIsRejected) {
  const fs::path dir = temp_dir("cifar");
  const RunResult r = cli("data fetch cifar10 --no-progress --dir " + dir.string() + " --mirror " +
                          base_ + "/good");
  expect_failure(r, "cifar10: cifar-10-binary.tar.gz: could not be downloaded");
  EXPECT_TRUE(contains(r.out, "the official one has 170052171")) << r.out;
  EXPECT_FALSE(fs::exists(dir / "cifar-10-binary.tar.gz"));
  EXPECT_FALSE(fs::exists(dir / "cifar-10-binary.tar.gz.part"));
}

TEST_F(DataFetch, ListVerifiesAndNamesProblems) {
  const fs::path dir = temp_dir("list");
  ASSERT_EQ(fetch(dir, "good").exit_code, 0);
  const RunResult ok = cli("data list --data-dir " + dir.string());
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_TRUE(contains(ok.out, "mnist: " + (dir / "mnist").string() + " (--data-dir), verified"))
      << ok.out;
  EXPECT_TRUE(contains(ok.out, "MD5 ok (official)")) << ok.out;
  EXPECT_TRUE(contains(ok.out, "60000 train / 10000 test images")) << ok.out;
  EXPECT_TRUE(contains(ok.out, "fashion-mnist: not found")) << ok.out;

  // A changed byte in a file that still decompresses is caught by its MD5.
  const fs::path labels = dir / "mnist" / "t10k-labels-idx1-ubyte.gz";
  std::string bytes = read_text(labels);
  bytes[bytes.size() / 2] ^= 1;
  write_text(labels, bytes);
  const RunResult bad = cli("data list --data-dir " + dir.string());
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_TRUE(contains(bad.out, "MD5 mismatch: not the official file")) << bad.out;
  EXPECT_TRUE(contains(bad.out, "PROBLEM")) << bad.out;
}

// --- where datasets are looked for (the C++ API) ---------------------------

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST(DataPlaces, OrderIsEnvironmentThenUserCacheThenShared) {
  ScopedEnv data("SPARSETRAIN_DATA", "/srv/data");
  ScopedEnv xdg("XDG_CACHE_HOME", "/var/cache/u");
  const std::vector<DataPlace> places = data_search_places("");
  ASSERT_EQ(places.size(), 3u);
  EXPECT_EQ(places[0].path, "/srv/data");
  EXPECT_EQ(places[1].path, "/var/cache/u/sparsetrain/data");
  EXPECT_EQ(places[2].path, "../shared/data");
  EXPECT_EQ(default_fetch_dir(), "/srv/data");
  ASSERT_EQ(data_search_places("/given").size(), 1u);
  EXPECT_EQ(data_search_places("/given")[0].origin, "--data-dir");
}

TEST(DataPlaces, HomeCacheWhenNoXdgVariable) {
  ScopedEnv home("HOME", "/home/someone");
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(user_data_cache_dir(), "/home/someone/.cache/sparsetrain/data");
  ScopedEnv relative("XDG_CACHE_HOME", "relative/not/allowed");
  EXPECT_EQ(user_data_cache_dir(), "/home/someone/.cache/sparsetrain/data");
}

TEST(DataPlaces, MissingDatasetNamesEveryPlaceTried) {
  const fs::path empty = temp_dir("empty_place");
  const fs::path cache = temp_dir("empty_cache");
  ScopedEnv data("SPARSETRAIN_DATA", empty.string());
  ScopedEnv xdg("XDG_CACHE_HOME", cache.string());
  fs::create_directories(cache / "sparsetrain" / "data" / "cifar-10");
  // From a folder with no ../shared/data beside it, so every place lacks it.
  const fs::path cwd = fs::current_path();
  const fs::path nowhere = temp_dir("nowhere") / "deeper";
  fs::create_directories(nowhere);
  fs::current_path(nowhere);
  try {
    locate_dataset("cifar10", "");
    fs::current_path(cwd);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    fs::current_path(cwd);
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, empty.string() + " ($SPARSETRAIN_DATA): no cifar-10/ folder")) << msg;
    EXPECT_TRUE(contains(msg, "(user cache): cifar-10/ lacks data_batch_1.bin[.gz]")) << msg;
    EXPECT_TRUE(contains(msg, "../shared/data (../shared/data): no such folder")) << msg;
    EXPECT_TRUE(contains(msg, "sparsetrain data fetch cifar10")) << msg;
  }
}

TEST(DataPlaces, FirstPlaceHoldingTheDatasetWins) {
  const fs::path first = temp_dir("place_a");
  const fs::path cache = temp_dir("place_b");
  fs::create_directories(first / "mnist");  // an empty folder does not count
  write_text(cache / "sparsetrain" / "data" / "mnist" / "train-images-idx3-ubyte.gz", "x");
  ScopedEnv data("SPARSETRAIN_DATA", first.string());
  ScopedEnv xdg("XDG_CACHE_HOME", cache.string());
  DatasetLocation loc = locate_dataset("mnist", "");
  EXPECT_EQ(loc.origin, "user cache");
  EXPECT_EQ(loc.folder, (cache / "sparsetrain" / "data" / "mnist").string());

  write_text(first / "mnist" / "train-images-idx3-ubyte", "raw copy");
  loc = locate_dataset("mnist", "");
  EXPECT_EQ(loc.origin, "$SPARSETRAIN_DATA");
  EXPECT_EQ(loc.folder, (first / "mnist").string());
}

// --- CIFAR-10: the official layout and its test batch ----------------------

std::string cifar_records(int count, int first_label) {
  std::string b;
  for (int r = 0; r < count; ++r) {
    b.push_back(static_cast<char>((first_label + r) % 10));
    b.append(3072, static_cast<char>(r));
  }
  return b;
}

TEST(CifarLayout, TestBatchWhenPresentElseBatchFiveHeldOut) {
  const fs::path dir = temp_dir("cifar_layout") / "cifar-10-batches-bin";
  for (int b = 1; b <= 5; ++b) {
    write_text(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(2, b));
  }
  Dataset train = load_dataset("cifar10", dir.string(), Split::kTrain);
  Dataset test = load_dataset("cifar10", dir.string(), Split::kTest);
  EXPECT_EQ(train.size(), 8);
  EXPECT_EQ(test.size(), 2);
  EXPECT_EQ(test.labels[0], 5);
  EXPECT_EQ(test.files, "data_batch_5.bin (held out: no test_batch.bin here)");

  write_text(dir / "test_batch.bin", cifar_records(3, 7));
  train = load_dataset("cifar10", dir.string(), Split::kTrain);
  test = load_dataset("cifar10", dir.string(), Split::kTest);
  EXPECT_EQ(train.size(), 10);
  EXPECT_EQ(train.files, "data_batch_1.bin .. data_batch_5.bin");
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(test.labels[0], 7);
  EXPECT_EQ(test.files, "test_batch.bin (the official test set)");
}

// The unpacking step on an archive of the official layout made here (with a
// small record count in place of 10,000).
TEST(CifarLayout, ArchiveIsUnpackedIntoTheOfficialFolder) {
  const fs::path work = temp_dir("cifar_archive");
  const fs::path src_dir = work / "src" / "cifar-10-batches-bin";
  DatasetSource src = dataset_source("cifar10");
  src.member_bin_bytes = 2 * 3073;
  for (const std::string& m : src.members) {
    write_text(src_dir / m, m.ends_with(".bin") ? cifar_records(2, 1) : "airplane\n");
  }
  write_text(src_dir / "readme.html", "<html></html>");
  const fs::path archive = work / "cifar-10-binary.tar.gz";
  ASSERT_EQ(std::system(("tar -czf " + archive.string() + " -C " + (work / "src").string() +
                         " cifar-10-batches-bin")
                            .c_str()),
            0);
  const fs::path out = work / "data" / "cifar-10-batches-bin";
  fs::create_directories(out);
  data::unpack_archive(archive, src, out);
  for (const std::string& m : src.members) {
    EXPECT_EQ(read_text(out / m), read_text(src_dir / m)) << m;
  }
  EXPECT_FALSE(fs::exists(out / "readme.html"));
  EXPECT_EQ(load_dataset("cifar10", (work / "data").string(), Split::kTest).files,
            "test_batch.bin (the official test set)");

  // A batch of the wrong size, or a missing member, is named.
  src.member_bin_bytes = 3 * 3073;
  try {
    data::unpack_archive(archive, src, out);
    ADD_FAILURE() << "no error for a wrong batch size";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "holds 6146 bytes, not 9219")) << e.what();
  }
  src.member_bin_bytes = 2 * 3073;
  src.members.push_back("data_batch_6.bin");
  try {
    data::unpack_archive(archive, src, out);
    ADD_FAILURE() << "no error for a missing member";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "holds no cifar-10-batches-bin/data_batch_6.bin")) << e.what();
  }
  // A damaged archive.
  std::string bytes = read_text(archive);
  write_text(archive, bytes.substr(0, bytes.size() / 2));
  src.members.pop_back();
  EXPECT_THROW(data::unpack_archive(archive, src, out), Error);
}

}  // namespace
}  // namespace sparsetrain
