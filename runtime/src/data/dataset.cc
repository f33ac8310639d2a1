// load_dataset(): the dataset table (folders, classes, normalisation), the
// places datasets are looked for and the choice of the dataset folder.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "data/readers.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

enum class Format { kIdx, kCifar };

struct DatasetInfo {
  const char* name;
  // Folder names tried under data_dir, first match wins ("cifar-10-batches-bin"
  // is what the official CIFAR-10 tarball unpacks to).
  std::vector<const char*> folders;
  Format format;
  // A file every copy has (raw or .gz): what tells a dataset folder from an
  // empty or unrelated one when places are searched.
  const char* first_file;
  // Per-channel mean and standard deviation of the training pixels scaled to
  // [0, 1], the values used throughout the literature (e.g. the PyTorch
  // examples for MNIST, the Fashion-MNIST benchmarks, and the CIFAR-10
  // ResNet recipes of He et al. 2016 as reproduced in torchvision).
  std::vector<float> mean;
  std::vector<float> stddev;
  std::vector<std::string> class_names;
};

const std::vector<DatasetInfo>& dataset_table() {
  static const std::vector<DatasetInfo> table = {
      {"mnist",
       {"mnist"},
       Format::kIdx,
       "train-images-idx3-ubyte",
       {0.1307f},
       {0.3081f},
       {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
      {"fashion-mnist",
       {"fashion-mnist"},
       Format::kIdx,
       "train-images-idx3-ubyte",
       {0.2860f},
       {0.3530f},
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
        "Ankle boot"}},
      {"cifar10",
       {"cifar-10", "cifar10", "cifar-10-batches-bin"},
       Format::kCifar,
       "data_batch_1.bin",
       {0.4914f, 0.4822f, 0.4465f},
       {0.2470f, 0.2435f, 0.2616f},
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}},
  };
  return table;
}

const DatasetInfo& find_dataset(const std::string& name) {
  for (const auto& info : dataset_table()) {
    if (name == info.name) return info;
  }
  std::string known;
  for (const auto& info : dataset_table())
    known += (known.empty() ? "" : ", ") + std::string(info.name);
  throw Error("unknown dataset '" + name + "' (expected " + known + ")");
}

bool is_directory_quietly(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && !ec;
}

bool exists_quietly(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec) && !ec;
}

// data_dir may hold the dataset folder or be that folder.
fs::path dataset_folder(const DatasetInfo& info, const std::string& data_dir) {
  const fs::path root(data_dir);
  if (!is_directory_quietly(root)) {
    throw Error(data_dir + ": no such directory (expected the folder that holds " +
                info.folders.front() + "/, or that folder itself)");
  }
  for (const char* folder : info.folders) {
    if (is_directory_quietly(root / folder)) return root / folder;
  }
  return root;
}

// The dataset folder under `root` that holds the dataset's first file, or
// an empty path with `why` saying what is missing.
fs::path searched_folder(const DatasetInfo& info, const fs::path& root, std::string& why) {
  if (!is_directory_quietly(root)) {
    why = "no such folder";
    return {};
  }
  for (const char* folder : info.folders) {
    const fs::path dir = root / folder;
    if (!is_directory_quietly(dir)) continue;
    const fs::path file = dir / info.first_file;
    if (exists_quietly(file) || exists_quietly(fs::path(file.string() + ".gz"))) return dir;
    why = std::string(folder) + "/ lacks " + info.first_file + "[.gz]";
    return {};
  }
  why = "no " + std::string(info.folders.front()) + "/ folder";
  return {};
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

std::string user_data_cache_dir() {
  const std::string xdg = env_or_empty("XDG_CACHE_HOME");
  // The XDG base-directory rule: a relative value is invalid and ignored.
  if (!xdg.empty() && xdg.front() == '/') return (fs::path(xdg) / "sparsetrain" / "data").string();
  const std::string home = env_or_empty("HOME");
  if (home.empty()) return {};
  return (fs::path(home) / ".cache" / "sparsetrain" / "data").string();
}

std::string default_fetch_dir() {
  const std::string env = env_or_empty("SPARSETRAIN_DATA");
  return env.empty() ? user_data_cache_dir() : env;
}

std::vector<DataPlace> data_search_places(const std::string& data_dir) {
  if (!data_dir.empty()) return {{data_dir, "--data-dir"}};
  std::vector<DataPlace> places;
  const std::string env = env_or_empty("SPARSETRAIN_DATA");
  if (!env.empty()) places.push_back({env, "$SPARSETRAIN_DATA"});
  const std::string cache = user_data_cache_dir();
  if (!cache.empty()) places.push_back({cache, "user cache"});
  places.push_back({"../shared/data", "../shared/data"});
  return places;
}

DatasetLocation locate_dataset(const std::string& name, const std::string& data_dir) {
  const DatasetInfo& info = find_dataset(name);
  if (!data_dir.empty()) {
    return {data_dir, dataset_folder(info, data_dir).string(), "--data-dir"};
  }
  std::string tried;
  for (const DataPlace& place : data_search_places(data_dir)) {
    std::string why;
    const fs::path dir = searched_folder(info, place.path, why);
    if (!dir.empty()) return {place.path, dir.string(), place.origin};
    tried += "\n  " + place.path + " (" + place.origin + "): " + why;
  }
  throw Error("dataset " + name + " not found; looked in:" + tried +
              "\nget it with `sparsetrain data fetch " + name +
              "`, or name its folder with --data-dir (or $SPARSETRAIN_DATA)");
}

const char* split_name(Split split) { return split == Split::kTrain ? "train" : "test"; }

DatasetGeometry dataset_geometry(const std::string& name) {
  const DatasetInfo& info = find_dataset(name);
  const int64_t side = info.format == Format::kIdx ? data::kMnistSide : data::kCifarSide;
  return {static_cast<int64_t>(info.mean.size()), side, side,
          static_cast<int>(info.class_names.size())};
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const auto& info : dataset_table()) names.emplace_back(info.name);
  return names;
}

Dataset load_dataset(const std::string& name, const std::string& data_dir, Split split,
                     int64_t limit) {
  const DatasetInfo& info = find_dataset(name);
  const fs::path dir = locate_dataset(name, data_dir).folder;
  Dataset out;
  out.name = info.name;
  out.folder = dir.string();
  if (info.format == Format::kIdx) {
    data::read_mnist_family(dir, split, limit, out);
  } else {
    data::read_cifar10(dir, split, limit, out);
  }
  out.class_names = info.class_names;
  out.mean = info.mean;
  out.stddev = info.stddev;
  return out;
}

AugmentOptions default_augmentation(const std::string& dataset_name, Split split) {
  AugmentOptions aug;
  if (dataset_name == "cifar10" && split == Split::kTrain) {
    aug.random_crop = true;
    aug.hflip = true;
  }
  return aug;
}

}  // namespace sparsetrain
