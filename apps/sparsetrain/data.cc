// sparsetrain data fetch | list: getting the datasets and seeing where they
// are (sparsetrain/fetch.h).

#include "sparsetrain/data.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sparsetrain/error.h"
#include "sparsetrain/fetch.h"

namespace sparsetrain::cli {
namespace {

constexpr int kBarWidth = 30;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

// A one-line progress bar on stderr, redrawn in place; nothing when stderr
// is not a terminal (logs get the per-file lines only).
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO) == 1) {}

  void update(const FetchProgress& p) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (p.file != file_) {
      file_ = p.file;
      start_ = now;
      start_bytes_ = p.done;
    } else if (!p.finished && now - last_ < kRedrawInterval) {
      return;
    }
    last_ = now;
    const double frac =
        p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0;
    const int filled = static_cast<int>(frac * kBarWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kBarWidth, '.');
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(p.done - start_bytes_) / kMiB / secs : 0;
    std::fprintf(stderr, "\r  %-28s [%s] %3.0f%%  %6.1f / %.1f MiB  %6.1f MiB/s", p.file.c_str(),
                 bar.c_str(), 100 * frac, static_cast<double>(p.done) / kMiB,
                 static_cast<double>(p.total) / kMiB, rate);
    if (p.finished) std::fprintf(stderr, "\n");
    std::fflush(stderr);
    open_line_ = !p.finished;
  }

  // Ends a half-drawn bar before a message line.
  void break_line() {
    if (open_line_) std::fprintf(stderr, "\n");
    open_line_ = false;
  }

 private:
  bool enabled_;
  bool open_line_ = false;
  std::string file_;
  int64_t start_bytes_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

int run_fetch(DataCommand& cmd) {
  std::string mirror = cmd.mirror;
  if (mirror.empty()) {
    const char* env = std::getenv("SPARSETRAIN_DATA_MIRROR");
    if (env != nullptr) mirror = env;
  }
  std::vector<std::string> names = cmd.names;
  if (names.size() == 1 && names.front() == "all") names = dataset_names();
  for (const std::string& name : names) dataset_source(name);  // unknown names fail first
  if (!mirror.empty() && names.size() > 1) {
    throw Error(
        "a mirror serves one dataset's files (the same names as the official ones): "
        "name one dataset with --mirror / $SPARSETRAIN_DATA_MIRROR");
  }

  ProgressBar bar(!cmd.no_progress);
  FetchOptions opt;
  opt.dir = cmd.dir;
  opt.mirror = mirror;
  opt.on_progress = [&](const FetchProgress& p) { bar.update(p); };
  opt.on_message = [&](const std::string& line) {
    bar.break_line();
    std::cout << "  " << line << "\n" << std::flush;
  };
  const std::string dir = cmd.dir.empty() ? default_fetch_dir() : cmd.dir;
  bool fetched_any = false;
  for (const std::string& name : names) {
    if (cmd.if_missing) {
      try {
        const DatasetLocation loc = locate_dataset(name, "");
        std::cout << name << ": already in " << loc.folder << " (" << loc.origin
                  << "), nothing to fetch\n";
        continue;
      } catch (const Error&) {  // not found anywhere: fetch it
      }
    }
    std::cout << name << ": into " << dir
              << (mirror.empty() ? std::string() : " from the mirror " + mirror) << "\n"
              << std::flush;
    const FetchResult r = fetch_dataset(name, opt);
    fetched_any = true;
    std::cout << name << ": ready in " << r.dataset_folder << "\n";
  }
  if (!fetched_any) return 0;
  if (cmd.dir.empty() && std::getenv("SPARSETRAIN_DATA") == nullptr) {
    std::cout << "(the user cache is searched by default: train, eval and prune find it with no "
                 "--data-dir)\n";
  } else if (!cmd.dir.empty()) {
    std::cout << "use it with --data-dir " << cmd.dir << " (or SPARSETRAIN_DATA=" << cmd.dir
              << ")\n";
  }
  return 0;
}

int run_list(DataCommand& cmd) {
  const std::vector<DatasetStatus> all = list_datasets(cmd.dir);
  bool all_ok = true;  // every dataset found is whole and readable
  for (const DatasetStatus& st : all) all_ok = all_ok && (!st.found || st.ok);
  if (cmd.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const DatasetStatus& st : all) {
      nlohmann::json files = nlohmann::json::array();
      for (const DataFileStatus& f : st.files) {
        files.push_back({{"name", f.name},
                         {"present", f.present},
                         {"bytes", f.bytes},
                         {"check", f.check},
                         {"ok", f.ok}});
      }
      arr.push_back({{"dataset", st.name},
                     {"found", st.found},
                     {"folder", st.folder},
                     {"origin", st.origin},
                     {"ok", st.ok},
                     {"problem", st.problem},
                     {"train_images", st.train_images},
                     {"test_images", st.test_images},
                     {"test_files", st.test_files},
                     {"files", files}});
    }
    std::cout << arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return all_ok ? 0 : 1;
  }
  std::cout << "places searched, in order:\n";
  for (const DataPlace& p : data_search_places(cmd.dir)) {
    std::cout << "  " << p.path << " (" << p.origin << ")\n";
  }
  for (const DatasetStatus& st : all) {
    std::cout << "\n";
    if (!st.found) {
      std::cout << st.name << ": not found\n  " << st.problem << "\n";
      continue;
    }
    std::cout << st.name << ": " << st.folder << " (" << st.origin << "), "
              << (st.ok ? "verified" : "PROBLEM") << "\n";
    for (const DataFileStatus& f : st.files) {
      std::printf("  %-28s %11s  %s\n", f.name.c_str(),
                  f.present ? std::to_string(f.bytes).c_str() : "-", f.check.c_str());
    }
    std::cout << std::flush;
    if (!st.problem.empty()) {
      std::cout << "  cannot be read: " << st.problem << "\n";
    } else {
      std::cout << "  read and checked: " << st.train_images << " train / " << st.test_images
                << " test images; test set " << st.test_files << "\n";
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace

CLI::App* add_data(CLI::App& app, DataCommand& cmd) {
  CLI::App* sub = app.add_subcommand("data", "Download the datasets and see where they are");
  sub->require_subcommand(1, 1);
  cmd.fetch_app = sub->add_subcommand(
      "fetch", "Download a dataset's official files, verify their MD5s and put them in place");
  cmd.fetch_app
      ->add_option("dataset", cmd.names, "mnist | fashion-mnist | cifar10 (several, or all)")
      ->required()
      ->check(CLI::IsMember({"mnist", "fashion-mnist", "cifar10", "all"}));
  cmd.fetch_app->add_option("--dir", cmd.dir,
                            "Data folder to download into (default: $SPARSETRAIN_DATA, else "
                            "~/.cache/sparsetrain/data)");
  cmd.fetch_app->add_option("--mirror", cmd.mirror,
                            "Base address to fetch the same file names from (default: "
                            "$SPARSETRAIN_DATA_MIRROR, else the official addresses)");
  cmd.fetch_app->add_flag("--no-progress", cmd.no_progress, "No progress bar");
  cmd.fetch_app->add_flag("--if-missing", cmd.if_missing,
                          "Only when no searched place (see `data list`) holds the dataset yet");
  cmd.list_app = sub->add_subcommand(
      "list", "Where each dataset is found, its files, and whether they verify");
  cmd.list_app->add_option("--data-dir", cmd.dir, option_help("data_dir"));
  cmd.list_app->add_flag("--json", cmd.json, "Print one JSON array");
  return sub;
}

int run_data(DataCommand& cmd) {
  if (cmd.fetch_app->parsed()) return run_fetch(cmd);
  return run_list(cmd);
}

}  // namespace sparsetrain::cli
