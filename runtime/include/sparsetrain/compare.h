// Comparing models beyond test accuracy: groups of trained models (a dense
// reference and pruned ones, several seeds each) on one dataset, measured
// as the pruning literature does:
//  - per model: accuracy, per-class accuracy, NLL, calibration (ECE over
//    equal-width confidence bins, the reliability diagram), mean confidence,
//    the fraction of uncertain predictions, nonzero weights;
//  - against the reference group: disagreement, flips, per-class accuracy
//    change, error correlation, and pruning-identified exemplars (PIEs,
//    Hooker et al. 2019: samples whose modal prediction differs between two
//    populations of models);
//  - embeddings (Boggust et al. 2022, the Embedding Comparator): each
//    sample's k nearest neighbours in each model's embedding at a layer
//    (cosine or Euclidean, one GEMM per block of rows), their Jaccard
//    overlap, PCA projections, and "neighbourhood dominoes";
//  - robustness: accuracy under uniform input noise and CIFAR-10-C-style
//    corruptions (Hendrycks & Dietterich 2019), and the prune potential per
//    distribution (Liebenwein et al. 2021: the largest sparsity whose
//    accuracy stays within a tolerance of the reference's).
// `sparsetrain compare` runs it and writes DIR/compare.json and a
// self-contained DIR/report.html (write_compare_report).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct CompareOptions {
  std::string layer;              // embedding node (its output); empty: the classifier's input
  int64_t k = 50;                 // neighbours per sample
  std::string metric = "cosine";  // cosine | euclidean
  int bins = 15;                  // calibration bins (equal width over [0, 1])
  // A prediction is uncertain when its largest softmax probability (the
  // maximum softmax probability of Hendrycks & Gimpel 2017) is below this.
  double uncertain_below = 0.9;
  int noise_steps = 15;    // uniform-noise amplitudes 0 .. noise_max, evenly spaced
  double noise_max = 0.7;  // in units of the normalised input (the dataset's stddev)
  std::vector<std::string> corruptions = {"gaussian-noise", "defocus-blur", "contrast",
                                          "brightness", "pixelate"};
  int severities = 5;          // 1 .. severities of each corruption
  int64_t robust_limit = 500;  // images of the robustness passes: the first N (-1: all, 0: none)
  double potential_tolerance = 0.005;  // accuracy drop allowed by the prune potential (0.5 points)
  int64_t batch = 500;
  uint64_t seed = 0;  // corruptions' noise
  int top = 10;       // PIEs shown, and least and most similar samples in the dominoes
  int domino_neighbours = 6;
  int64_t scatter_points = 2000;  // PCA points kept per model for the report (-1: all)
};

// A model in a comparison: its graph (the caller's, run in inference mode
// and left unchanged) and a label.
struct CompareModel {
  std::string label;  // "dense/0", or the run folder
  std::string path;   // the checkpoint, for the report (may be empty)
  Graph* graph = nullptr;
};
struct CompareGroup {
  std::string name;  // "dense", "acdc90"; the first group is the reference
  std::vector<CompareModel> models;
};

struct ReliabilityBin {
  double lower = 0, upper = 0;  // confidence interval of the bin [lower, upper)
  int64_t count = 0;
  double confidence = 0;  // mean confidence of its samples
  double accuracy = 0;    // fraction of them predicted right
};

struct ModelStats {
  std::string group, label, path;
  double accuracy = 0, nll = 0, ece = 0, mean_confidence = 0, uncertain_fraction = 0;
  std::vector<double> class_accuracy;
  std::vector<ReliabilityBin> reliability;
  int64_t weights = 0;             // entries of the conv2d and linear weights
  int64_t nonzeros = 0;            // of them, nonzero (stored and not zero)
  int64_t parameters = 0;          // all trainable parameters, dense count
  double sparsity = 0;             // 1 - nonzeros / weights
  std::vector<int32_t> predicted;  // (N)
  std::vector<float> confidence;   // (N) largest softmax probability
  // Robustness: accuracy per noise amplitude (CompareResult::noise_levels)
  // and per corruption and severity (1..severities); on the first robust_limit images.
  std::vector<double> noise_accuracy;
  std::map<std::string, std::vector<double>> corruption_accuracy;
};

// A model against one model of the reference group.
struct PairStats {
  std::string model, reference;
  double disagreement = 0;    // fraction of samples predicted differently
  double right_to_wrong = 0;  // fraction right in the reference, wrong in the model
  double wrong_to_right = 0;
  double error_correlation = 0;               // Pearson correlation of the two 0/1 error vectors
  std::vector<double> class_accuracy_change;  // model - reference, per class
};

struct Pie {
  int64_t sample = 0;
  int32_t label = 0;
  int32_t reference_mode = 0, group_mode = 0;   // modal predictions (lowest class on ties)
  double reference_share = 0, group_share = 0;  // fraction of each population giving its mode
};

struct GroupStats {
  std::string name;
  int models = 0;
  double sparsity = 0;  // mean over the models
  double accuracy = 0, accuracy_std = 0, nll = 0, ece = 0, mean_confidence = 0,
         uncertain_fraction = 0;
  std::vector<double> class_accuracy;       // mean over the models
  std::vector<ReliabilityBin> reliability;  // the models' predictions pooled
  // Against the reference group: means over every (model, reference model)
  // pair (for the reference group itself: over its distinct pairs, the
  // seed-to-seed baseline; zero with one model).
  double disagreement = 0, right_to_wrong = 0, wrong_to_right = 0, error_correlation = 0;
  std::vector<double> class_accuracy_change;  // group mean - reference mean
  // PIEs against the reference group (both groups need two models or more).
  bool has_pies = false;
  int64_t pie_count = 0;
  double pie_fraction = 0;
  double reference_accuracy_on_pies = 0, reference_accuracy_off_pies = 0;
  std::vector<Pie> top_pies;  // the most confident disagreements first
  // Robustness, means over the models.
  std::vector<double> noise_accuracy;
  std::map<std::string, std::vector<double>> corruption_accuracy;
};

// The embedding of one model against the reference group's first model.
struct EmbeddingPair {
  std::string model, reference;
  std::vector<float> jaccard;  // (N) per-sample Jaccard of the two k-NN sets
  double mean = 0, median = 0;
  std::vector<int64_t> histogram;    // 20 equal-width bins over [0, 1]
  std::vector<int64_t> least, most;  // `top` samples, least (most) similar first
  // The first domino_neighbours neighbours of each of least then most, in
  // the model's and in the reference's embedding.
  std::vector<std::vector<int64_t>> model_neighbours, reference_neighbours;
};

struct Projection {
  std::string model;
  std::vector<int64_t> samples;  // which samples (a seeded subset of scatter_points)
  std::vector<float> x, y;       // their first two principal components
  double explained[2] = {0, 0};  // variance ratio of each component
};

// Prune potential on one distribution: the largest group sparsity whose
// accuracy is within the tolerance of the reference group's (the reference's
// own sparsity when none is).
struct PrunePotential {
  std::string distribution;  // "clean", "noise 0.30", "contrast" (mean over severities)
  double reference_accuracy = 0;
  std::vector<double> group_accuracy;  // per group, in CompareResult::groups order
  double potential = 0;
};

struct CompareResult {
  CompareOptions options;
  std::string dataset, files;
  std::vector<std::string> class_names;
  int64_t samples = 0, robust_samples = 0;
  std::string layer;  // the embedding node
  int64_t embedding_dim = 0;
  std::vector<ModelStats> models;  // in group order
  std::vector<GroupStats> groups;
  std::vector<PairStats> pairs;  // every non-reference model against every reference model
  std::vector<EmbeddingPair> embeddings;
  std::vector<Projection> projections;  // the reference's first model, then each group's first
  std::vector<double> noise_levels;
  std::vector<PrunePotential> potentials;
  std::map<std::string, double> seconds;  // per stage
  std::vector<int32_t> labels;            // (N)
};

// Runs every measurement. Throws Error naming the problem: no group, an
// empty group, models of different input shapes or class counts, a layer
// the models lack (or whose output differs in size between them), a bad
// option. The graphs run in inference mode (their state is unchanged).
CompareResult compare_models(const std::vector<CompareGroup>& groups, const Dataset& data,
                             const CompareOptions& options = {});

// compare.json (everything of the result; the per-sample arrays included)
// as text, and the report: DIR/compare.json and DIR/report.html (one
// self-contained page: tables, Chart.js plots and images inlined). Returns
// the paths written.
std::string compare_json(const CompareResult& result);
std::vector<std::string> write_compare_report(const std::string& dir, const CompareResult& result,
                                              const Dataset& data);

// --- the measurements, each on its own ----------------------------------

// Calibration of predictions with these confidences (largest softmax
// probability) and correctness: the reliability bins and ECE = sum over bins
// of count / N * |accuracy - confidence|.
std::vector<ReliabilityBin> reliability_bins(std::span<const float> confidence,
                                             std::span<const uint8_t> correct, int bins);
double expected_calibration_error(std::span<const ReliabilityBin> bins);

// The modal prediction of each sample over a population (predictions[m][n]),
// the lowest class on ties, and the share of the population that gives it.
void modal_predictions(const std::vector<std::vector<int32_t>>& predictions, int classes,
                       std::vector<int32_t>& mode, std::vector<double>& share);
// PIEs: the samples whose modal predictions in the two populations differ.
std::vector<int64_t> pruning_identified_exemplars(
    const std::vector<std::vector<int32_t>>& reference,
    const std::vector<std::vector<int32_t>>& group, int classes);

// The k nearest neighbours of every row of x (n, d) among the other rows
// ("cosine": largest cosine similarity; "euclidean": smallest distance),
// nearest first, (n, k) row-major; ties go to the lower index. Similarities
// come from oneDNN's sgemm, a block of rows at a time.
std::vector<int64_t> nearest_neighbours(std::span<const float> x, int64_t n, int64_t d, int64_t k,
                                        const std::string& metric = "cosine");
// Per-row Jaccard overlap |A n B| / |A u B| of two (n, k) neighbour lists.
std::vector<float> neighbour_jaccard(std::span<const int64_t> a, std::span<const int64_t> b,
                                     int64_t n, int64_t k);
// The first two principal components of x (n, d): p (n, 2) and each one's
// share of the variance.
std::vector<float> principal_components_2d(std::span<const float> x, int64_t n, int64_t d,
                                           double explained[2]);

// Corruptions of images in [0, 1] ((n, C, H, W), changed in place): the
// names of CompareOptions::corruptions, severity 1..5 (0: unchanged). Noise
// is drawn per image from (seed, corruption, severity, first + i), so a
// sample gets the same noise in any batch.
std::vector<std::string> corruption_names();
void corrupt_images(std::span<float> images, int64_t channels, int64_t height, int64_t width,
                    const std::string& corruption, int severity, uint64_t seed, int64_t first = 0);
// Uniform noise in [-amplitude, amplitude] added to every pixel, clipped to
// [0, 1]; with channel_scale (one factor a channel), channel c's amplitude is
// amplitude * channel_scale[c] (compare passes the dataset's stddev, so the
// amplitude is in the units of the normalised input).
void add_uniform_noise(std::span<float> images, int64_t image_numel, double amplitude,
                       uint64_t seed, int64_t first = 0, std::span<const float> channel_scale = {});

// Largest sparsity among `sparsity`/`accuracy` (per group) whose accuracy
// is at least reference_accuracy - tolerance; reference_sparsity if none.
double prune_potential(std::span<const double> sparsity, std::span<const double> accuracy,
                       double reference_sparsity, double reference_accuracy, double tolerance);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
