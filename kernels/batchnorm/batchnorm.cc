// BatchNorm2d dispatch: the list of implementations, most preferred first.
// Measured on ResNet-20 shapes, one thread, forward training / backward, us:
//                 dnnl NHWC   tbb NHWC   dnnl NCHW   tbb NCHW   tbb CHWN
//   128x16x32x32   571/1070  1156/1099  3231/4361    466/708    450/594
//   128x32x16x16   196/291    476/464   1332/1991    233/287    238/263
//   128x64x8x8     103/155    225/226    643/884     140/177    123/141
// so oneDNN's JIT kernel serves NHWC and the TBB loops NCHW and CHWN
// (oneDNN's NCHW path is a generic loop). The same loops built for AVX-512
// against baseline x86-64, CHWN, two threads, medians of 30 (us, fwd/bwd):
//   128x16x32x32  229/264 vs 259/283   (memory-bound)
//   128x32x16x16  107/120 vs 130/140
//   128x64x8x8     56/68  vs  76/86
// In CHWN each channel is one contiguous run, so the TBB loops run both
// passes of a channel back to back and the second reads it from L2: with the
// data cold, as in a training step (bench/bench_batchnorm, 4 tensor sets in
// turn, 2 threads, AVX-512), 128x16x32x32 went from 568/763 to 390/515 us.
// A fused ReLU (desc.relu), a fused residual sum (desc.residual) and
// statistics given by the convolution before (forward_training_given) are
// served by every entry but oneDNN's, so a BatchNorm that runs on oneDNN
// stays unfused.
#include "kernels/batchnorm/batchnorm.h"

#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {
namespace {

bool supports_all(const BatchNormDesc&) { return true; }

constexpr BatchNormKernel kDnnl = {"dnnl",
                                   Isa::kAvx2,
                                   batchnorm_dnnl_supports,
                                   batchnorm_forward_training_dnnl,
                                   batchnorm_backward_dnnl,
                                   batchnorm_forward_inference_dnnl,
                                   batchnorm_backward_inference_dnnl,
                                   nullptr,
                                   nullptr};
constexpr BatchNormKernel kRef = {"ref",
                                  Isa::kRef,
                                  supports_all,
                                  batchnorm_forward_training_ref,
                                  batchnorm_backward_ref,
                                  batchnorm_forward_inference_ref,
                                  batchnorm_backward_inference_ref,
                                  batchnorm_forward_training_add_ref,
                                  batchnorm_forward_training_given_ref};

}  // namespace

const KernelList<BatchNormKernel>& batchnorm_kernels() {
  // The TBB entries are defined beside their loops; copied here on first use.
  static const BatchNormKernel kernels[] = {kDnnl, batchnorm_avx512_kernel, batchnorm_tbb_kernel,
                                            kRef};
  static const KernelList<BatchNormKernel> list(kernels);
  return list;
}

}  // namespace sparsetrain::kernels
