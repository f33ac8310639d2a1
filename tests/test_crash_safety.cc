// Crash safety (issue 16): a training run killed with SIGKILL at many points,
// checkpoint writes included, always leaves a checkpoint that loads and
// resumes to the same result as an uninterrupted run, and the next start
// leaves no temporary file of a killed write behind.
//
// The kills are placed by what the run prints: the trainer prints an epoch's
// row and then writes the checkpoint, so a kill a few microseconds to a few
// milliseconds after a row lands before, inside or after that write, and in
// the steps of the next epoch. One run is killed again and again, each time
// resumed from what the last kill left, and finally allowed to finish.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "sparsetrain/checkpoint.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using testing::fresh_temp_dir;
using testing::run_cli;

constexpr int kEpochs = 12;
// Microseconds between an epoch row and the kill, cycled over the kills.
constexpr int kKillDelaysUs[] = {0, 50, 150, 400, 900, 2000, 4000, 8000, 15000};
constexpr int kKills = 18;

std::string train_args(const fs::path& out) {
  // Dense kernels: the timed choice of `auto` could differ between the
  // processes and so change the rounding.
  return "train --model mlp --dataset mnist --data-dir " + std::string(SPARSETRAIN_TEST_DATA_DIR) +
         " --train-limit 256 --test-limit 64 --batch-size 32 --epochs " + std::to_string(kEpochs) +
         " --kernels dense --threads 2 --seed 11 --no-progress --out " + out.string();
}

std::vector<std::string> split_args(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    const size_t j = line.find(' ', i);
    const size_t end = j == std::string::npos ? line.size() : j;
    if (end > i) out.push_back(line.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

struct Killed {
  pid_t pid = -1;
  bool finished = false;  // the run ended by itself before the kill
};

// Starts the program with `args`, waits for the first epoch row it prints,
// sleeps `delay_us` and kills it with SIGKILL.
Killed run_and_kill(const std::string& args, int delay_us) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const std::vector<std::string> words = split_args(args);
  std::vector<char*> argv;
  std::string binary = SPARSETRAIN_BINARY;
  argv.push_back(binary.data());
  std::vector<std::string> storage(words);
  for (auto& w : storage) argv.push_back(w.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDERR_FILENO);
    ::close(fds[0]);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  Killed k;
  k.pid = pid;
  std::string text;
  char buf[4096];
  bool row_seen = false;
  while (!row_seen) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // the run ended
    text.append(buf, static_cast<size_t>(n));
    // An epoch row starts with its right-aligned epoch number.
    for (size_t at = 0; (at = text.find('\n', at)) != std::string::npos; ++at) {
      const size_t start = at + 1;
      if (start + 5 < text.size() && text.compare(start, 4, "    ") == 0 &&
          std::isdigit(static_cast<unsigned char>(text[start + 4]))) {
        row_seen = true;
      }
    }
  }
  if (row_seen) {
    ::usleep(static_cast<useconds_t>(delay_us));
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  k.finished = WIFEXITED(status);
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << args;
  }
  return k;
}

std::set<std::string> temporaries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) out.insert(name);
  }
  return out;
}

void expect_same_tensors(const Checkpoint& a, const Checkpoint& b) {
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) {
    EXPECT_EQ(a.raw(name).bytes, b.raw(name).bytes) << name;
  }
}

TEST(CrashSafety, RunKilledManyTimesResumesToTheUninterruptedResult) {
  const fs::path root = fresh_temp_dir("sparsetrain_crash_", "kill9");
  const fs::path ref = root / "uninterrupted", run = root / "killed";
  ASSERT_EQ(run_cli(train_args(ref), false).exit_code, 0);

  int kills_mid_write = 0, kills_before_first_checkpoint = 0;
  std::set<pid_t> earlier;  // processes killed so far
  for (int i = 0; i < kKills; ++i) {
    const fs::path ck = run / "checkpoint.safetensors";
    const bool resumable = fs::exists(ck);
    const std::string args = resumable ? "train --resume " + run.string() + " --no-progress"
                                       : train_args(run) + " --force";
    const Killed k = run_and_kill(args, kKillDelaysUs[i % std::size(kKillDelaysUs)]);
    if (k.finished) break;
    if (!fs::exists(ck)) ++kills_before_first_checkpoint;
    // Whatever the kill interrupted, the checkpoint there is whole.
    if (fs::exists(ck)) {
      EXPECT_NO_THROW(Checkpoint::load(ck.string())) << "after kill " << i;
    }
    // The only temporary file left is the killed process's own: the start of
    // that process removed those of the processes killed before it.
    for (const std::string& name : temporaries(run)) {
      const pid_t owner = static_cast<pid_t>(std::stol(name.substr(name.rfind('.') + 1)));
      EXPECT_EQ(owner, k.pid) << name << " survived a later start";
      ++kills_mid_write;
    }
    earlier.insert(k.pid);
  }
  // The last start finishes the run.
  const std::string last = fs::exists(run / "checkpoint.safetensors")
                               ? "train --resume " + run.string() + " --no-progress"
                               : train_args(run) + " --force";
  ASSERT_EQ(run_cli(last, false).exit_code, 0);
  EXPECT_TRUE(temporaries(run).empty());
  expect_same_tensors(Checkpoint::load((run / "checkpoint.safetensors").string()),
                      Checkpoint::load((ref / "checkpoint.safetensors").string()));
  std::printf("%zu kills, %d inside a checkpoint write, %d before the first checkpoint\n",
              earlier.size(), kills_mid_write, kills_before_first_checkpoint);
  fs::remove_all(root);
}

}  // namespace
}  // namespace sparsetrain
