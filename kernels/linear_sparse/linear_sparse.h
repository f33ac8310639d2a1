// Sparse linear layer in fp32 with an unstructured-sparse weight: forward,
// backward-data and backward-weights.
//
// Activations are features x batch, the batch innermost (Layout::kCN): src is
// (I, N) row-major, dst (O, N). With W the (O, I) weight and only its
// nonzeros stored:
//
//   forward           dst[o, n]      = bias[o] + sum_{i : W[o,i] != 0} W[o, i] * src[i, n]
//   backward-data     diff_src[i, n] = sum_{o : W[o,i] != 0} W[o, i] * diff_dst[o, n]
//   backward-weights  diff_W[o, i]  += sum_n diff_dst[o, n] * src[i, n]   at the nonzeros only
//                     diff_bias[o]  += sum_n diff_dst[o, n]
//
// Backward-weights is a sampled dense-dense product (SDDMM): one dot product
// over the batch per stored nonzero; a dense weight gradient is never formed.
// With the batch innermost, every nonzero of the forward pass streams one
// contiguous activation row through the FMA units (SpMM), and so does every
// nonzero of the backward-data pass over a transposed copy of the index.
//
// Passes: forward and backward-data OVERWRITE dst / diff_src (backward-data
// can accumulate on request); backward-weights ACCUMULATES (+=) into
// diff_values and diff_bias (the trainer zeroes gradients).
//
// ---------------------------------------------------------------------------
// The compressed weight (LinearSparseWeights)
//
// The nonzeros are held twice over the same value array, once per direction:
//
//   fwd: S = W   (rows O, cols I)   drives forward and backward-weights
//   bwd: S = W^T (rows I, cols O)   drives backward-data, so that each
//        diff_src row accumulates in registers instead of scattering
//
// Each direction is a CSR matrix cut into column panels ("panelled CSR"):
// columns [p*panel_cols, (p+1)*panel_cols) form panel p, and the nonzeros are
// ordered panel by panel, row by row within a panel, by column within a row.
// Row r of panel p owns positions [ptr[p*rows + r], ptr[p*rows + r + 1]) of
// `col` and of the values. Column indices are 16-bit and relative to their
// panel (so a panel holds at most 65536 columns; the input size itself is not
// limited). A panel of the dense operand (panel_cols rows of one batch tile)
// is sized to stay in L1 while every output row visits it; with one panel the
// format is plain CSR. The panel width is chosen from the shape and the
// density when the index is built (LinearSparseOptions overrides it).
//
// `values` (fwd order) is the parameter: the optimizer updates it in place and
// backward-weights writes gradients in the same order. `bwd_values` is a copy
// in bwd order (bwd_values[k] = values[bwd_perm[k]]) refreshed by
// linear_sparse_sync_transposed() after every change of `values`.
//
// Memory: 16 bytes per nonzero (2 x 16-bit index, 3 x fp32 value or
// permutation) plus 4 bytes per (row, panel) and per row in each direction.
//
// Operands should be 64-byte aligned (Tensor storage is): a misaligned batch
// tile splits every vector load across two cache lines.
// ---------------------------------------------------------------------------
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/common/cpu.h"
#include "kernels/common/kernel_list.h"
#include "kernels/common/pass_kernels.h"
#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

// Largest number of columns one panel may hold (16-bit local indices).
inline constexpr int64_t kMaxPanelCols = 65536;

// One direction of the index: a CSR matrix (rows x cols) in column panels.
struct SparsePanels {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t panel_cols = 1;  // columns per panel (the last one may be narrower)
  int64_t num_panels = 1;
  std::vector<uint32_t> ptr;         // (num_panels * rows + 1) segment starts
  std::vector<uint16_t> col;         // (nnz) column relative to its panel
  std::vector<uint32_t> nnz_before;  // (rows + 1) nonzeros of rows [0, r), all panels

  int64_t panel_begin(int64_t p) const { return p * panel_cols; }
  int64_t panel_width(int64_t p) const;
  // Row pointers of panel p: row r spans [row_ptr(p)[r], row_ptr(p)[r + 1]).
  const uint32_t* row_ptr(int64_t p) const { return ptr.data() + p * rows; }
};

struct LinearSparseWeights {
  int64_t out_features = 0;  // O
  int64_t in_features = 0;   // I
  int64_t nnz = 0;
  SparsePanels fwd;                // W:   rows O, cols I
  std::vector<float> values;       // (nnz) in fwd order
  SparsePanels bwd;                // W^T: rows I, cols O
  std::vector<uint32_t> bwd_perm;  // (nnz) bwd position -> index into values
  std::vector<float> bwd_values;   // (nnz) values[bwd_perm[k]]

  double density() const;
  // Bytes held by the index and the values (what replaces O * I * 4).
  int64_t bytes() const;
};

struct LinearSparseOptions {
  // Columns per panel in each direction; 0 picks one from the shape and the
  // density. Tests force small panels to exercise the panel seams.
  int64_t fwd_panel_cols = 0;
  int64_t bwd_panel_cols = 0;
};

// Builds the index from a dense (O, I) weight and an (O, I) mask: position
// (o, i) is stored when mask[o * I + i] != 0, whatever the weight's value
// there (an explicit zero stays a trainable nonzero). Throws sparsetrain::Error
// on sizes the format cannot hold (more than 2^32 - 1 nonzeros).
LinearSparseWeights linear_sparse_pack(const float* weights,  // (O, I)
                                       const uint8_t* mask,   // (O, I)
                                       int64_t out_features, int64_t in_features,
                                       const LinearSparseOptions& options = {});
// Keeps the positions with |weights| > threshold (threshold 0: the nonzeros).
LinearSparseWeights linear_sparse_pack_threshold(const float* weights,  // (O, I)
                                                 int64_t out_features, int64_t in_features,
                                                 float threshold,
                                                 const LinearSparseOptions& options = {});
// (Tensor front ends: runtime/src/nodes/kernel_tensors.h.)

// Reloads the values at the stored positions from a dense (O, I) weight, the
// index unchanged (the mask is fixed), and syncs bwd_values.
void linear_sparse_refresh(LinearSparseWeights& w, const float* weights);
// Recomputes bwd_values from values (after the optimizer updated values).
void linear_sparse_sync_transposed(LinearSparseWeights& w);
// Writes `per_nonzero` (nnz values in fwd order: the weights, or a gradient
// from backward-weights) into a dense (O, I) array, zeros elsewhere.
void linear_sparse_scatter(const LinearSparseWeights& w, const float* per_nonzero,
                           float* dense);  // (O, I)
// The dense (O, I) weight (zeros at the pruned positions).
void linear_sparse_unpack(const LinearSparseWeights& w, float* weights);
// The (O, I) mask of stored positions (1 stored, 0 pruned).
void linear_sparse_mask(const LinearSparseWeights& w, uint8_t* mask);

// ---------------------------------------------------------------------------
// Micro-kernels. Single-threaded; each runs one batch tile of one panel over a
// range of rows of one direction's index. The operator layer below cuts the
// work into such calls and runs them on TBB.
//
// The dense operand B of a tile (src for forward and backward-weights,
// diff_dst for backward-data) is packed by the operator: row c of the panel
// at b + c * ldb, n valid columns then zeros up to ldb (a multiple of the
// kernel's `vec`), 64-byte aligned when ldb is a multiple of 16.
// ---------------------------------------------------------------------------

// How an SpMM tile starts its accumulators.
enum class SpmmInit : uint8_t {
  kZero,        // out = S * B
  kBias,        // out = bias[r] + S * B
  kAccumulate,  // out += S * B (later panels; backward-data with accumulate)
};

// What every micro-kernel call reads: rows [row_begin, row_end) of one
// panel of S against one batch tile of the packed dense operand b.
struct PanelTileArgs {
  const uint32_t* row_ptr;  // the panel's row pointers (SparsePanels::row_ptr)
  const uint16_t* col;      // column within the panel, indexed like the nonzeros
  const float* b;           // (panel width, ldb) packed dense rows, zero-padded
  int64_t ldb;
  int64_t row_begin;
  int64_t row_end;
  int64_t n;  // valid batch columns, 1 <= n <= tile_n
};

// out[r, 0:n] (=, or +=) sum_k values[k] * b[col[k] * ldb + 0:n] over
// k in [row_ptr[r], row_ptr[r+1]), for r in [row_begin, row_end).
struct SpmmArgs : PanelTileArgs {
  const float* values;
  float* out;  // row r at out + r * ldo, columns [0, n)
  int64_t ldo;
  const float* bias;  // (rows), read when init == kBias
  SpmmInit init;
};

// diff_values[k] += sum_{j<n} a[r * lda + j] * b[col[k] * ldb + j] over the
// nonzeros k of rows [row_begin, row_end); diff_bias[r] += sum_{j<n} a[r*lda+j]
// when diff_bias is not null.
struct SddmmArgs : PanelTileArgs {
  const float* a;  // diff_dst rows at a + r * lda, columns [0, n)
  int64_t lda;
  float* diff_values;  // indexed like col
  float* diff_bias;    // (rows) or null
};

using SpmmFn = void (*)(const SpmmArgs& args);
using SddmmFn = void (*)(const SddmmArgs& args);

// A registered micro-kernel. The name says op, type, register tile and ISA:
// f32_spmm_fwd_4x16__avx512 keeps 4 vectors of 16 floats of each output row
// in registers (a batch tile of 64).
struct SpmmKernel {
  const char* name;
  Isa isa;
  int tile_n;  // batch columns per call
  int vec;     // ldb of a packed tile is n rounded up to this
  SpmmFn fn;
};
struct SddmmKernel {
  const char* name;
  Isa isa;
  int tile_n;
  int vec;
  SddmmFn fn;
};

// One list per op, best ISA first, ref last. Dispatch, tests and benchmarks
// all iterate these lists, so a new kernel is tested and benchmarked by being
// registered here (linear_sparse_dispatch.cc).
using LinearSparseKernelLists = PassKernelLists<SpmmKernel, SpmmKernel, SddmmKernel>;
const LinearSparseKernelLists& linear_sparse_kernel_lists();

// linear_sparse_kernel_lists().pick(isa): the dispatcher's choice.
using LinearSparseKernels = PassKernels<SpmmKernel, SpmmKernel, SddmmKernel>;
LinearSparseKernels linear_sparse_kernels(Isa isa);
// linear_sparse_kernels(best_isa()): what the ops use when given no kernel.
LinearSparseKernels linear_sparse_default_kernels();

// ---------------------------------------------------------------------------
// Batch layouts of the kCN activations (features x batch)
//
//   kPlain    (C, N) row-major: Layout::kCN of sparsetrain/tensor.h.
//   kBlocked  the batch cut into blocks of W = linear_sparse_block_width(N)
//             columns; block t is a (C, W) row-major array holding batch
//             columns [t W, t W + W), blocks stored one after another. The
//             columns past N in the last block are padding: kernels never let
//             them reach a result and never write them.
//
// The micro-kernels work on batch tiles whose rows are contiguous, which is
// what kBlocked stores. A kPlain operand is packed into that form on every
// call (a copy of src or diff_dst per pass); a run of sparse layers that
// keeps its activations kBlocked skips those copies.
// ---------------------------------------------------------------------------

enum class BatchLayout : uint8_t { kPlain, kBlocked };

// Block width of the kBlocked layout: 64 when N >= 64, else N rounded up to
// a multiple of 16 (so a batch of 16, 32 or 48 is the same in both layouts).
int64_t linear_sparse_block_width(int64_t batch);
// Floats a kBlocked (features, batch) activation occupies.
int64_t linear_sparse_blocked_size(int64_t features, int64_t batch);
// Reorders between the layouts (padding written as zeros).
void linear_sparse_to_blocked(float* blocked, const float* plain, int64_t features, int64_t batch);
void linear_sparse_from_blocked(float* plain, const float* blocked, int64_t features,
                                int64_t batch);

// ---------------------------------------------------------------------------
// Operators: cut a pass into micro-kernel calls (batch tile x panel x chunk
// of rows) and run them on TBB (as many threads as the TBB arena allows; see
// kernels/common/threads.h). Each output element (a row of a batch tile of
// dst, one diff_values entry) is computed by one task, in a fixed order that
// depends neither on the thread count nor on the schedule, so results are
// bit-identical from run to run and across thread counts. Activations are in
// `layout` (src, dst, diff_dst and diff_src alike). `kernel` null picks
// linear_sparse_default_kernels(). Never throw.
// ---------------------------------------------------------------------------

void linear_sparse_forward(float* dst,        // (O, N), overwritten
                           const float* src,  // (I, N)
                           const LinearSparseWeights& w,
                           const float* bias,  // (O) or null
                           int64_t batch, BatchLayout layout = BatchLayout::kPlain,
                           const SpmmKernel* kernel = nullptr);

void linear_sparse_backward_data(float* diff_src,        // (I, N), overwritten (+= if accumulate)
                                 const float* diff_dst,  // (O, N)
                                 const LinearSparseWeights& w, int64_t batch,
                                 BatchLayout layout = BatchLayout::kPlain, bool accumulate = false,
                                 const SpmmKernel* kernel = nullptr);

void linear_sparse_backward_weights(float* diff_values,     // (nnz) fwd order, +=
                                    float* diff_bias,       // (O) or null, +=
                                    const float* diff_dst,  // (O, N)
                                    const float* src,       // (I, N)
                                    const LinearSparseWeights& w, int64_t batch,
                                    BatchLayout layout = BatchLayout::kPlain,
                                    const SddmmKernel* kernel = nullptr);

// ---------------------------------------------------------------------------
// The oracle: plain loops straight over the fwd index and the unpacked kCN
// operands, summing in the order of the stored nonzeros (ascending column).
// Single-threaded, no tiling; what every kernel is tested against.
// ---------------------------------------------------------------------------

void linear_sparse_forward_oracle(float* dst, const float* src, const LinearSparseWeights& w,
                                  const float* bias, int64_t batch);
void linear_sparse_backward_data_oracle(float* diff_src, const float* diff_dst,
                                        const LinearSparseWeights& w, int64_t batch);
void linear_sparse_backward_weights_oracle(float* diff_values, float* diff_bias,
                                           const float* diff_dst, const float* src,
                                           const LinearSparseWeights& w, int64_t batch);

}  // namespace sparsetrain::kernels
