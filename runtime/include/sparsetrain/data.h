// Datasets and the batch loader.
//
// load_dataset() reads MNIST, Fashion-MNIST (IDX files) or CIFAR-10 (binary
// batches) into memory as raw 8-bit pixels, validating every byte it reads:
// any problem raises sparsetrain::Error naming the file and what is wrong.
//
// A Loader turns a Dataset into normalised float batches (B, C, H, W) in
// Layout::kNCHW, with optional shuffling and augmentation, and prepares batch
// i+1 on TBB while the caller trains on batch i. Every random choice is a
// pure function of (seed, epoch, position in the epoch), so a run resumed
// with start_epoch(e) + skip_to(b) sees exactly the batches it would have
// seen, whatever the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

enum class Split : uint8_t {
  kTrain,
  kTest,  // CIFAR-10: test_batch.bin, or data_batch_5 when it is absent (see load_dataset)
};

const char* split_name(Split split);  // "train" | "test"

struct Dataset {
  std::string name;  // "mnist" | "fashion-mnist" | "cifar10" (or any name for a hand-made set)
  int64_t channels = 0, height = 0, width = 0;
  int num_classes = 0;
  std::vector<uint8_t> pixels;  // (N, C, H, W), row-major, 0..255
  // Samples given as floats instead (deep features for a linear probe, an
  // app's own data): when non-empty, pixels is empty, the Loader copies these
  // as they are (mean and stddev are not used and may be empty) and refuses
  // augmentation.
  std::vector<float> values;             // (N, C, H, W), row-major
  std::vector<int32_t> labels;           // (N), each in [0, num_classes)
  std::vector<std::string> class_names;  // (num_classes)
  // Per-channel normalisation applied by the Loader:
  // x = (pixel / 255 - mean[c]) / stddev[c].
  std::vector<float> mean;    // (C)
  std::vector<float> stddev;  // (C)
  // Where the files were read from (empty for a hand-made set), and which
  // files make up the split, e.g. "data_batch_5.bin (held out: no
  // test_batch.bin here)" for a CIFAR-10 test split without the official
  // test batch.
  std::string folder;
  std::string files;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_numel() const { return channels * height * width; }  // C * H * W
};

// The names load_dataset() accepts: {"mnist", "fashion-mnist", "cifar10"}.
std::vector<std::string> dataset_names();

// What every sample of a dataset load_dataset() knows looks like, without
// reading it: e.g. {1, 28, 28, 10} for "mnist". Throws Error for an unknown
// name. Used to check what a file claims about its data before allocating.
struct DatasetGeometry {
  int64_t channels = 0, height = 0, width = 0;
  int num_classes = 0;
};
DatasetGeometry dataset_geometry(const std::string& name);

// Reads a dataset into memory.
//
// data_dir is either the folder that holds the dataset folders (mnist/,
// fashion-mnist/, cifar-10/) or a dataset folder itself. An empty data_dir
// searches the places of data_search_places("") in order and takes the first
// that holds the dataset (see locate_dataset). Each file is read as the raw
// file if present, else as the same name + ".gz" (gzip).
//
//   mnist, fashion-mnist: {train,t10k}-{images-idx3,labels-idx1}-ubyte
//   cifar10: with the official test_batch.bin present (what `sparsetrain
//            data fetch cifar10` unpacks): train = data_batch_1..5.bin
//            (50,000 images), test = test_batch.bin (10,000);
//            without it: train = data_batch_1..4.bin (40,000 images),
//            test = data_batch_5.bin (10,000, held out).
//            Dataset::files says which.
//
// limit >= 0 keeps only the first `limit` samples and stops reading there:
// headers are still validated, but the rest of each file is not read, so its
// length is not checked. limit < 0 reads and checks everything.
Dataset load_dataset(const std::string& name, const std::string& data_dir, Split split,
                     int64_t limit = -1);

// Class subsets: one dataset gives several tasks (CIFAR-10's first five
// classes upstream, its last five downstream).
//
// parse_class_list("0-4", 10) == {0, 1, 2, 3, 4}; "5,6,7,8,9", "3,0-2" and
// "9-7" (descending) work too; the order given is the order of the new
// labels. Throws Error naming the spec for a class outside [0, num_classes),
// a class given twice, an empty list or an item that is not a number or a
// range.
std::vector<int> parse_class_list(const std::string& spec, int num_classes);

// Keeps the samples whose label is one of `classes`, relabelled 0..k-1 in
// the order of `classes`, with their class names; everything else of the set
// (normalisation, geometry, files) is kept. limit >= 0 keeps only the first
// `limit` of those samples.
Dataset select_classes(const Dataset& data, const std::vector<int>& classes, int64_t limit = -1);

// load_dataset() for a task: with a non-empty `classes` spec, the whole split
// is read, select_classes(parse_class_list(classes)) applied, and `limit`
// counts samples of the kept classes.
Dataset load_dataset(const std::string& name, const std::string& data_dir, Split split,
                     int64_t limit, const std::string& classes);

// One place where datasets are looked for.
struct DataPlace {
  std::string path;
  std::string origin;  // "--data-dir", "$SPARSETRAIN_DATA", "user cache", "../shared/data"
};

// The places searched for datasets, in order. A non-empty data_dir is the
// only place. Otherwise: $SPARSETRAIN_DATA (when set), the per-user cache
// user_data_cache_dir(), then ../shared/data (relative to the working
// folder, where this project's own datasets sit).
std::vector<DataPlace> data_search_places(const std::string& data_dir);

// $XDG_CACHE_HOME/sparsetrain/data, else $HOME/.cache/sparsetrain/data
// (empty when neither variable is set).
std::string user_data_cache_dir();

// Where `sparsetrain data fetch` writes when no folder is given:
// $SPARSETRAIN_DATA when set, else user_data_cache_dir().
std::string default_fetch_dir();

struct DatasetLocation {
  std::string root;    // the place it was found in
  std::string folder;  // the dataset folder itself (root/mnist, ...)
  std::string origin;  // DataPlace::origin of root
};

// Finds a dataset: the first place of data_search_places(data_dir) that holds
// its folder with its first training file (raw or .gz). With a non-empty
// data_dir that folder is taken as it is (it may also be the dataset folder
// itself). Throws Error naming every place tried and what each lacked.
DatasetLocation locate_dataset(const std::string& name, const std::string& data_dir);

// Train-time augmentation, applied by the Loader before normalisation
// (the order of torchvision's RandomCrop(size, padding) then
// RandomHorizontalFlip()).
struct AugmentOptions {
  // Pad the image by crop_padding pixels on each side with pixel value 0
  // (black, i.e. -mean/stddev after normalisation, as torchvision pads before
  // ToTensor/Normalize) and take an H x W crop at a uniformly random offset
  // in [0, 2 * crop_padding] along each axis.
  bool random_crop = false;
  int64_t crop_padding = 4;
  bool hflip = false;  // mirror left-right with probability 1/2
};

// Random crop + flip for the CIFAR-10 training split; none otherwise.
AugmentOptions default_augmentation(const std::string& dataset_name, Split split);

// The order in which a shuffling Loader visits n samples in `epoch`: a
// Fisher-Yates shuffle drawn with sparsetrain::Rng seeded from (seed, epoch).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

struct Batch {
  Tensor images;                        // (B, C, H, W) Layout::kNCHW, normalised
  std::vector<int32_t> labels;          // (B)
  std::vector<int64_t> sample_indices;  // (B) index of each row in the Dataset
  int64_t index = -1;                   // batch index within the epoch
};

// Not thread-safe: one thread drives a Loader. The Dataset must outlive it
// and stay unchanged while it exists.
class Loader {
 public:
  // Throws Error for batch_size <= 0, crop_padding < 0, or a Dataset whose
  // fields disagree (pixel count, mean/stddev per channel, stddev <= 0).
  Loader(const Dataset& data, int64_t batch_size, bool shuffle, AugmentOptions aug, uint64_t seed,
         bool drop_last = false);
  ~Loader();
  Loader(Loader&&) noexcept;
  Loader& operator=(Loader&&) noexcept;
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts `epoch` (>= 0) at batch 0. Its sample order and augmentation
  // depend only on (seed, epoch). next() before any start_epoch() starts
  // epoch 0.
  void start_epoch(int64_t epoch);
  // Fills `out` with the next batch of the epoch; returns false (and leaves
  // `out` alone) once the epoch is exhausted. `out` gets fresh storage each
  // time, so earlier batches stay valid.
  bool next(Batch& out);
  // Continues the current epoch at batch_index in [0, batches_per_epoch()].
  void skip_to(int64_t batch_index);
  // Data-parallel training: from the next batch on, each batch holds only
  // the share of rank `rank` of `ranks` of the global batch (rows
  // [R * rank / ranks, R * (rank + 1) / ranks) of its R rows, possibly none),
  // each sample with the augmentation a single loader gives it. Batch
  // indices and batches_per_epoch() stay those of the global batches.
  void set_shard(int rank, int ranks);

  int64_t batches_per_epoch() const;
  int64_t batch_size() const;
  int64_t epoch() const;  // -1 before the first start_epoch()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
