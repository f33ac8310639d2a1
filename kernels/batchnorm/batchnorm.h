// BatchNorm2d over 4-D activations (N, C, H, W): per-channel statistics over
// the N*H*W values of a channel (Ioffe & Szegedy 2015, "Batch Normalization",
// Algorithm 1 for the forward pass, section 3 for the gradients).
//
//   xhat = (src - mean) * rstd,   rstd = 1 / sqrt(var + eps)
//   dst  = gamma * xhat + beta
//
// Training uses the statistics of the batch (biased variance) and saves mean
// and rstd for backward; inference uses fixed statistics (the running mean
// and variance). Every pointer to an activation addresses a dense (N, C, H, W)
// tensor in `desc.layout` (in kCHWN its channel planes desc.plane_stride()
// floats apart); per-channel vectors are (C).
//
// Backward OVERWRITES diff_src and ACCUMULATES (+=) into diff_gamma and
// diff_beta; the training loop zeroes parameter gradients.
//
// With desc.relu the training pair computes BatchNorm followed by ReLU in one
// go: forward_training writes dst = max(0, gamma * xhat + beta), and backward
// takes the gradient of that output, masking diff_dst where the recomputed
// gamma * xhat + beta is not positive. The mask is recomputed from src with
// the very operations of the forward pass, so it matches the forward's
// decision bit for bit (an unfused ReLU reads the same decision from dst).
// Only forward_training and backward honour it; a kernel that cannot fuse
// says so in supports().
//
// With desc.residual (forward_training_add only) the output also takes a
// residual sum, the Add of a residual block fused in: dst = y + residual, or
// max(0, y + residual) with desc.relu. The backward of that sum is the
// caller's (the gradient of y is the gradient of the sum, masked by the
// ReLU from dst), so backward never sees desc.residual. A kernel without it
// has a null forward_training_add and refuses such a desc in supports().
#pragma once

#include <cstdint>
#include <span>

#include "kernels/common/kernel_list.h"
#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

struct BatchNormDesc {
  int64_t n = 0, c = 0, h = 0, w = 0;  // src, dst, diff_src, diff_dst: (N, C, H, W)
  Layout layout = Layout::kNCHW;       // kNCHW (or kPlain), kNHWC or kCHWN
  float eps = 1e-5f;
  bool relu = false;      // a ReLU fused after the normalisation (training pair only)
  bool residual = false;  // a residual added before that ReLU (forward_training_add only)
  // kCHWN: floats from one channel plane to the next (of every activation
  // the call reads or writes), when more than a plane's N * H * W: padded
  // planes, as the sparse convolution may lay them out (Conv2dShape::
  // src_plane). What lies between planes is neither read nor written.
  // 0: packed. Served by the ref and TBB loops, not by oneDNN.
  int64_t plane = 0;

  int64_t per_channel() const { return n * h * w; }
  // Floats between channel planes in kCHWN.
  int64_t plane_stride() const { return plane > 0 ? plane : n * h * w; }
  int64_t numel() const { return n * c * h * w; }
};

// --- training: batch statistics ---------------------------------------------
// dst (N, C, H, W); mean, rstd (C): saved for backward.
using BatchNormForwardTrainingFn = void(float* dst, float* mean, float* rstd, const float* src,
                                        const float* gamma, const float* beta,
                                        const BatchNormDesc& desc);
// forward_training, then dst += residual (N, C, H, W, desc.layout) before the
// ReLU of desc.relu: one pass over dst instead of a BatchNorm and an Add.
using BatchNormForwardTrainingAddFn = void(float* dst, float* mean, float* rstd, const float* src,
                                           const float* residual, const float* gamma,
                                           const float* beta, const BatchNormDesc& desc);
// forward_training_add (residual null: forward_training) with the batch
// statistics given: batch_mean and batch_var (C) are the mean and biased
// variance of src, formed elsewhere (a sparse convolution's epilogue,
// conv_sparse_forward_stats), so only the normalising pass runs. mean and rstd
// are written as by forward_training.
using BatchNormForwardTrainingGivenFn = void(float* dst, float* mean, float* rstd, const float* src,
                                             const float* residual, const float* gamma,
                                             const float* beta, const double* batch_mean,
                                             const double* batch_var, const BatchNormDesc& desc);
// Gradient through the batch statistics:
//   diff_beta  += sum(diff_dst)
//   diff_gamma += sum(diff_dst * xhat)
//   diff_src    = gamma * rstd * (diff_dst - mean(diff_dst) - xhat * mean(diff_dst * xhat))
// diff_src may be null (only the parameter gradients are wanted).
// beta is read only with desc.relu (to recompute the ReLU's mask).
using BatchNormBackwardFn = void(float* diff_src, float* diff_gamma, float* diff_beta,
                                 const float* diff_dst, const float* src, const float* gamma,
                                 const float* beta, const float* mean, const float* rstd,
                                 const BatchNormDesc& desc);

// --- inference: fixed statistics ---------------------------------------------
// dst (N, C, H, W); mean, var (C): the running statistics.
using BatchNormForwardInferenceFn = void(float* dst, const float* src, const float* gamma,
                                         const float* beta, const float* mean, const float* var,
                                         const BatchNormDesc& desc);
// Gradient when the statistics are constants (inference mode: saliency,
// frozen BatchNorm):
//   diff_beta  += sum(diff_dst),  diff_gamma += sum(diff_dst * xhat)
//   diff_src    = gamma * rstd * diff_dst
// diff_src may be null.
using BatchNormBackwardInferenceFn = void(float* diff_src, float* diff_gamma, float* diff_beta,
                                          const float* diff_dst, const float* src,
                                          const float* gamma, const float* mean, const float* var,
                                          const BatchNormDesc& desc);

// One implementation of the op.
struct BatchNormKernel {
  const char* name;  // "dnnl", "avx512", "tbb", "ref"
  Isa isa;           // kernels/common/kernel_list.h
  // Whether this implementation handles (and is meant for) `desc`.
  bool (*supports)(const BatchNormDesc& desc);
  BatchNormForwardTrainingFn* forward_training;
  BatchNormBackwardFn* backward;
  BatchNormForwardInferenceFn* forward_inference;
  BatchNormBackwardInferenceFn* backward_inference;
  BatchNormForwardTrainingAddFn* forward_training_add;      // null: no residual fusion
  BatchNormForwardTrainingGivenFn* forward_training_given;  // null: computes its statistics
};

// Every implementation, most preferred first; the scalar reference is last
// and supports everything. Nodes run batchnorm_kernels().pick_for(desc) (the
// reference when SPARSETRAIN_ISA=ref); tests and benchmarks iterate it.
const KernelList<BatchNormKernel>& batchnorm_kernels();

// PyTorch's running-statistics update, with the UNBIASED batch variance:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * count / (count - 1)
// where var = 1 / rstd^2 - eps is the biased batch variance of `count` values
// (count >= 2). running_mean, running_var, mean, rstd: (C).
void batchnorm_update_running_stats(float* running_mean, float* running_var, const float* mean,
                                    const float* rstd, int64_t channels, int64_t count,
                                    float momentum, float eps);

// --- implementations ------------------------------------------------------------
// Each declared by its pass's function type above.

// Scalar reference: plain loops over offset4, double accumulation.
BatchNormForwardTrainingFn batchnorm_forward_training_ref;
BatchNormForwardTrainingAddFn batchnorm_forward_training_add_ref;
BatchNormForwardTrainingGivenFn batchnorm_forward_training_given_ref;
BatchNormBackwardFn batchnorm_backward_ref;
BatchNormForwardInferenceFn batchnorm_forward_inference_ref;
BatchNormBackwardInferenceFn batchnorm_backward_inference_ref;

// Vectorisable C++ over TBB (batchnorm_tbb_impl.h): one channel per task, so
// a channel's values are still in L2 when the second pass reads them
// (channel-planar layouts), or fixed pixel blocks with a deterministic
// reduction (channel-last layouts). The same loops are compiled twice: for
// baseline x86-64 ("tbb", batchnorm_tbb.cc) and for AVX-512 ("avx512",
// batchnorm_avx512.cc; supported when the CPU has AVX-512 and SPARSETRAIN_ISA
// does not cap it below). Each is its entry of batchnorm_kernels(),
// constant-initialised, so nothing compiled for AVX-512 runs to build the
// list.
extern const BatchNormKernel batchnorm_tbb_kernel;
extern const BatchNormKernel batchnorm_avx512_kernel;

// oneDNN batch_normalization primitives, cached per shape (its JIT kernels
// cover channel-last data; its channel-planar path is a slow generic loop).
bool batchnorm_dnnl_supports(const BatchNormDesc& desc);
BatchNormForwardTrainingFn batchnorm_forward_training_dnnl;
BatchNormBackwardFn batchnorm_backward_dnnl;
BatchNormForwardInferenceFn batchnorm_forward_inference_dnnl;
BatchNormBackwardInferenceFn batchnorm_backward_inference_dnnl;

}  // namespace sparsetrain::kernels
