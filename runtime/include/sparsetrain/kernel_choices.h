// Which kernels each compressed layer ran on, and why: the record of every
// sparse-or-dense decision a run makes (--kernels auto and auto-fixed), so
// that a rerun or a resumed run replays them and is bit-identical to the
// original whatever the load of the machine (sparse and dense kernels sum in
// different orders, so a flipped choice changes the numbers).
//
// How a decision is made (Graph::set_sparse_kernels):
//   auto        the first time a layer meets a problem (shape, batch, stored
//               count), one training step of the layer (forward,
//               backward-data, backward-weights) runs on each side,
//               interleaved: one warm-up each, then kKernelTimingReps
//               alternating repetitions, medians compared. When the medians
//               differ by less than kKernelChoiceMargin of the faster one,
//               the timing is noise and the fixed rule decides.
//   auto-fixed  the fixed rule only, nothing timed: runs that must match on
//               any machine.
// The fixed rule (kernel_choice_rule): sparse when the layer's density is at
// most kConvSparseMaxDensity (conv2d) or kLinearSparseMaxDensity (linear),
// the crossovers measured on the training-step benchmarks (README "Kernel
// choices"). A decision is made once per (layer, problem) in a graph and
// reused; a layer with the same problem as one already timed reuses that
// timing. In auto mode a layer's decision also holds at its other batch
// sizes of at least kKernelChoiceSharedMinBatch (an evaluation batch, an
// epoch's last partial batch): same layer, same family (the problem without
// its batch), decided_by "batch", nothing timed.
//
// Replay (Graph::replay_kernel_choices, --kernel-choices, --resume): a
// recorded choice for (layer, problem) is taken as it is, whatever the mode
// asks; a decision the record does not hold is made as above.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// Repetitions of each side after its warm-up, interleaved (sparse, dense,
// dense, sparse, ...) so a burst of load hits both alike.
inline constexpr int kKernelTimingReps = 7;
// Medians closer than this fraction of the faster one are a tie: the rule
// decides. 10% is about the spread of repeated medians of one layer on a
// machine running other jobs (README "Kernel choices").
inline constexpr double kKernelChoiceMargin = 0.10;
// The fixed rule's crossovers: the density at or below which the sparse
// kernels are taken without timing (README "Kernel choices" has the
// measurements behind them).
inline constexpr double kConvSparseMaxDensity = 0.40;
inline constexpr double kLinearSparseMaxDensity = 0.50;
// From this batch size up, a layer's decision at one batch holds at every
// other (auto mode): the sparse kernels keep the batch innermost, so their
// cost per sample, and oneDNN's, barely depends on the batch once it fills
// two vectors. ResNet-20 at batch 500 makes the choices it made at batch 128
// (README "Kernel choices"), and timing them again costs a 10,000-image
// evaluation about 13 s, against 3-5 s for the evaluation itself.
inline constexpr int64_t kKernelChoiceSharedMinBatch = 32;

// One decision of one layer.
struct KernelChoice {
  std::string layer;    // node name ("conv2", "layer1.0.conv1")
  std::string op;       // "conv2d" | "linear"
  std::string problem;  // what the decision is keyed by, with the layer: geometry, batch, nnz
  std::string family;   // the problem without its batch (empty: decided per batch)
  std::string shape;    // for people: "16->16 3x3 s1 p1 32x32 batch 128"
  int64_t batch = 0;
  int64_t nnz = 0;       // stored weights
  double density = 0.0;  // nnz over the dense weight's size
  std::string kernels;   // the mode that asked: "auto" | "auto-fixed"
  // "timing" (the faster by more than the margin), "margin" (timed, a tie:
  // the rule decided), "rule" (auto-fixed: nothing timed), "batch" (the
  // layer's decision for the same family at from_batch: nothing timed).
  std::string decided_by;
  int64_t from_batch = 0;  // decided_by "batch": the batch that was decided
  bool sparse = false;     // the choice: sparse kernels, else oneDNN
  double sparse_ms = -1;   // medians per training step of the layer; -1: not timed
  double dense_ms = -1;
  int64_t step = 0;       // Graph::step() when the decision was made
  bool replayed = false;  // taken from a record (a file or a checkpoint), not made here
  bool operator==(const KernelChoice&) const = default;
};

// The rule's choice for a layer of op `op` ("conv2d" | "linear") at
// `density`.
bool kernel_choice_rule(const std::string& op, double density);

// Called after each timing with the problem and the two medians (ms), which
// it may change: for tests and experiments that simulate a loaded machine.
// The changed values are what is compared and recorded.
using KernelTimingHook =
    std::function<void(const KernelChoice& problem, double& sparse_ms, double& dense_ms)>;

// The JSON of a choices file (kernel_choices.json in a run folder):
//   {"format": "sparsetrain-kernel-choices-1",
//    "choices": [{"layer": "conv2", "op": "conv2d", "problem": "...",
//                 "shape": "...", "batch": 50, "nnz": 1234, "density": 0.1,
//                 "kernels": "auto", "decided_by": "timing",
//                 "choice": "sparse", "sparse_ms": 0.41, "dense_ms": 0.62,
//                 "step": 0, "family": "..."}, ...]}
// "replayed": true marks a choice taken from an earlier record. Untimed
// choices have "sparse_ms" and "dense_ms" null; "from_batch" comes with
// decided_by "batch". Files without "family" (older runs) replay per batch.
std::string kernel_choices_to_json(const std::vector<KernelChoice>& choices);
// Reads that JSON; `where` names the source in messages. Needs "choices",
// and in each entry "layer", "problem" and "choice" ("sparse" | "dense");
// the other fields are optional but must have their types. Throws Error
// naming `where`, the entry and the field on anything else, and on two
// entries for one (layer, problem) that disagree.
std::vector<KernelChoice> kernel_choices_from_json(const std::string& text,
                                                   const std::string& where);
// A choices file, or a run folder's kernel_choices.json. Throws Error naming
// the file when it cannot be read or is malformed.
std::vector<KernelChoice> read_kernel_choices(const std::string& path);
// `path`, or path/kernel_choices.json when `path` is a folder.
std::string kernel_choices_file(const std::string& path);
// Writes the file atomically (sparsetrain/files.h).
void write_kernel_choices(const std::string& path, const std::vector<KernelChoice>& choices);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
