// Sparsity methods (DESIGN.md "Sparsity methods"): which weights to keep
// (mask selection over the prunable layers), when masks change (the
// schedules: static, AC/DC, gradual magnitude pruning, RigL), and how a run
// reports its sparsity. The trainer drives a SparsityController around every
// step; an app with its own training loop can do the same.
//
// Prunable layers are the conv2d and linear nodes; their weight is the only
// prunable parameter (ParamKind::kWeight). Biases and BatchNorm are never
// pruned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Graph;
class Optimizer;
struct TrainOptions;

// How a target sparsity is spread over the layers:
// - global:  one magnitude threshold over all chosen layers together;
// - uniform: every chosen layer at the target sparsity;
// - erk:     Erdos-Renyi-Kernel, density of a layer proportional to
//            (sum of its weight's dims) / (product of its dims), scaled so
//            the kept count over all chosen layers meets the target; layers
//            whose density would exceed 1 are made dense and the rest
//            re-solved.
enum class Distribution : uint8_t { kGlobal, kUniform, kErk };
// "global" | "uniform" | "erk"; throws Error naming --distribution otherwise.
Distribution parse_distribution(const std::string& name);
const char* distribution_name(Distribution distribution);

struct PrunableLayer {
  std::string node;   // node name
  std::string param;  // "<node>.weight"
  Shape shape;        // dense weight shape: (O, I) or (O, C/G, KH, KW)
};
// The prunable layers in node order; with `dense_first_last` the first and
// the last of them are left out (when there are more than two).
std::vector<PrunableLayer> prunable_layers(Graph& graph, bool dense_first_last);
// Whether the graph has a conv2d node (TrainOptions::dense_first_last = -1
// keeps the first and last layer dense exactly then).
bool has_convolutions(Graph& graph);

// Kept weights per layer for uniform and ERK: the counts sum to exactly
// round((1 - sparsity) * total), and each is within one weight of its real
// share (largest remainders get the rounding). Throws Error for kGlobal
// (which depends on the magnitudes) and for a sparsity outside [0, 1).
std::vector<int64_t> layer_keep_counts(const std::vector<PrunableLayer>& layers, float sparsity,
                                       Distribution distribution);
// The same as densities (kept fraction per layer).
std::vector<double> layer_densities(const std::vector<PrunableLayer>& layers, float sparsity,
                                    Distribution distribution);

// 0/1 masks (one per layer, the weight's dense shape) keeping the largest
// magnitudes at `sparsity` spread by `distribution`. A compressed weight's
// pruned entries count as zeros. Ties: the lower flat index (global: the
// earlier layer) wins, so the result does not depend on threads.
std::vector<Tensor> magnitude_masks(Graph& graph, const std::vector<PrunableLayer>& layers,
                                    float sparsity, Distribution distribution);
// 0/1 masks with the same kept counts chosen uniformly at random (global:
// over all chosen weights together), from `seed` alone. RigL's initial
// masks (Evci et al. 2020, sec. 3: random ERK masks at initialisation).
std::vector<Tensor> random_masks(const std::vector<PrunableLayer>& layers, float sparsity,
                                 Distribution distribution, uint64_t seed);

// Sparsity over the prunable weights (all conv and linear weights, chosen or
// not) and over every trainable parameter, counting stored entries of
// compressed weights and nonzeros elsewhere.
struct SparsityReport {
  int64_t prunable_total = 0;
  int64_t prunable_nonzero = 0;
  int64_t params_total = 0;
  int64_t params_nonzero = 0;
  double prunable_sparsity() const;
  double params_sparsity() const;
};
SparsityReport sparsity_report(Graph& graph);

// Bytes held by the trainable parameters and the optimizer state: stored
// values (all of them for a dense weight, the nonzeros of a compressed
// one), the index of each stored entry of a compressed weight (int64) and
// the mask of a masked one, plus every optimizer state tensor (`optimizer`
// may be null). Gradients and activations are not counted.
int64_t parameter_memory_bytes(Graph& graph, Optimizer* optimizer);

// Gradual magnitude pruning (Zhu & Gupta): the target at step t,
//   s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for t0 <= t <= t0 + n dt,
// s_i before t0 and s_f after.
double gmp_sparsity(int64_t step, double initial, double final_sparsity, int64_t start_step,
                    int64_t end_step);

// --- schedules ----------------------------------------------------------------

// static: masks right after initialisation, fixed for the run.
// acdc:   AC/DC (Peste et al. 2021): a dense warm-up, then compressed and
//         decompressed phases alternating, ending compressed.
// gmp:    gradual magnitude pruning (Zhu & Gupta 2017): masked while the
//         target ramps up on the cubic schedule, compressed once it is met.
// rigl:   RigL (Evci et al. 2020): fixed sparsity; every dT steps each layer
//         drops its smallest stored weights and grows as many at the pruned
//         positions with the largest dense gradient.
enum class SparsityMethod : uint8_t { kStatic, kAcdc, kGmp, kRigl };
// "static" | "acdc" | "gmp" | "rigl"; throws Error naming --sparsity-method.
SparsityMethod parse_sparsity_method(const std::string& name);
const char* sparsity_method_name(SparsityMethod method);
// static: uniform; acdc, gmp: global; rigl: erk.
Distribution default_distribution(SparsityMethod method);

// The state the chosen layers are in while a step runs.
enum class SparsityPhase : uint8_t {
  kDense,         // before any pruning (or a dense run)
  kMasked,        // dense storage + masks, dense kernels (GMP ramp; masked storage)
  kCompressed,    // nonzeros only, sparse kernels where they are faster
  kDecompressed,  // AC/DC: dense training between compressed phases
};
// "dense" | "masked" | "compressed" | "decompressed": the name a kPhaseChange
// hook receives.
const char* phase_name(SparsityPhase phase);

// The first step at or after an epoch (fractions allowed):
// round(epoch * steps_per_epoch).
int64_t epoch_to_step(double epoch, int64_t steps_per_epoch);

// AC/DC's default phase starts for a run of `epochs` epochs: the paper's
// 200-epoch schedule (compressed from epochs 10, 50, 90, 130, 170,
// decompressed from 30, 70, 110, 150) scaled, i.e. 5, 25, 45, 65, 85% and
// 15, 35, 55, 75% of the run.
std::vector<double> acdc_default_compress_epochs(double epochs);
std::vector<double> acdc_default_decompress_epochs(double epochs);

// A run's sparsity schedule in steps. "At step s" means before the step with
// index s runs, i.e. after s steps have been taken; a phase that begins at
// step s is in force from that step on.
struct SparsitySchedule {
  SparsityMethod method = SparsityMethod::kStatic;
  Distribution distribution = Distribution::kUniform;
  float sparsity = 0.0f;        // the target; 0: a dense run
  int dense_first_last = -1;    // as TrainOptions::dense_first_last
  bool masked_storage = false;  // sparse phases hold masks instead of compressing
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 0;
  // acdc: steps at which compressed / decompressed phases begin.
  std::vector<int64_t> compress_steps;
  std::vector<int64_t> decompress_steps;
  // gmp: pruning at prune_start_step + k * prune_every_steps up to
  // prune_end_step (= t0 + n dt), where the final sparsity is reached and the
  // layers are compressed.
  float initial_sparsity = 0.0f;
  int64_t prune_start_step = 0;
  int64_t prune_every_steps = 100;
  int64_t prune_end_step = 0;
  // rigl: mask updates at prune_start_step + k * prune_every_steps (k >= 1)
  // before update_end_step, each dropping and regrowing the fraction
  // drop_fraction / 2 (1 + cos(pi t / update_end_step)) of every layer.
  int64_t update_end_step = 0;
  float drop_fraction = 0.3f;
  uint64_t seed = 0;  // rigl: the initial random masks

  bool active() const { return sparsity > 0.0f; }
  // The phase while step `step` runs.
  SparsityPhase phase_at(int64_t step) const;
  // gmp: whether the masks are recomputed at `step`, and the target then.
  bool gmp_prunes_at(int64_t step) const;
  double gmp_target(int64_t step) const;
  // rigl: whether the masks are updated on step `step`, and the fraction of
  // each layer's stored weights dropped and regrown then.
  bool rigl_updates_at(int64_t step) const;
  double rigl_drop_fraction(int64_t step) const;
  // One line for the run header, e.g. "acdc, global, target 0.900; dense
  // until epoch 1.5, compressed from 1.5 7.5 ..., decompressed from 4.5 ...".
  std::string describe() const;
};

// The schedule of a run from its options (defaults filled in, epochs
// converted to steps). Throws Error naming the option on a bad value,
// including phase boundaries that fall on the same step.
SparsitySchedule make_sparsity_schedule(const TrainOptions& options, int64_t steps_per_epoch);
// The checks of make_sparsity_schedule that need no step count (called by
// validate(TrainOptions)).
void validate_sparsity_options(const TrainOptions& options);

// Something the controller did, for logs and metrics.
struct SparsityEvent {
  int64_t step = 0;
  std::string kind;  // "phase" (a new phase), "prune" (gmp), "update" (rigl)
  SparsityPhase phase = SparsityPhase::kDense;
  double sparsity = 0;            // over the chosen layers, after the event
  std::vector<double> densities;  // per chosen layer, after the event
  double drop_fraction = 0;       // update: the fraction dropped and regrown
  int64_t regrown = 0;            // update: weights regrown over all layers
};

// Applies a schedule to a graph around the training steps:
//   start()                       once, right after initialisation
//   before_step(s)                transitions and pruning due at step s
//   forward, backward
//   after_backward(s)             (reads the dense gradients on RigL updates)
//   mask gradients, optimizer step, mask values
//   after_step(s)                 (RigL: drop, grow, compress)
// Every transition goes through Graph::compress / decompress / mask with the
// optimizer, and fires HookPoint::kPhaseChange with the new phase's name.
class SparsityController {
 public:
  // `optimizer` may be null (no state to carry). The graph and optimizer
  // must outlive the controller.
  SparsityController(SparsitySchedule schedule, Graph& graph, Optimizer* optimizer);

  const SparsitySchedule& schedule() const { return schedule_; }
  // The layers the schedule prunes (dense_first_last resolved).
  const std::vector<PrunableLayer>& layers() const { return layers_; }
  bool dense_first_last() const { return dense_first_last_; }
  SparsityPhase phase() const { return phase_; }

  // static: magnitude masks at the target now; rigl: random masks (ERK by
  // default). Compressed, or masked with masked storage.
  void start();
  // After a checkpoint taken after `steps` steps was loaded (its masks
  // restored with the parameters, in the state they were saved in): adopts
  // the schedule's phase at that point.
  void resume(int64_t steps);

  void before_step(int64_t step);
  void after_backward(int64_t step);
  void after_step(int64_t step);

  // Events since the last call, oldest first.
  std::vector<SparsityEvent> take_events();
  // Kept fraction of each chosen layer now.
  std::vector<double> densities();
  // Sparsity over the chosen layers now.
  double sparsity();

 private:
  void set_phase(SparsityPhase phase, int64_t step);
  void apply_masks(const std::vector<Tensor>& masks, bool compressed);
  void record(int64_t step, const std::string& kind);
  void rigl_begin_update();
  void rigl_finish_update(int64_t step);

  SparsitySchedule schedule_;
  Graph& graph_;
  Optimizer* optimizer_;
  bool dense_first_last_ = false;
  std::vector<PrunableLayer> layers_;
  SparsityPhase phase_ = SparsityPhase::kDense;
  std::vector<SparsityEvent> events_;
  bool rigl_updating_ = false;
  std::vector<Tensor> rigl_grads_;  // dense gradients of the update step
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
