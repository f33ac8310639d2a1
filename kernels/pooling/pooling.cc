// Pooling dispatch: the list of implementations, most preferred first.
// Measured on ResNet-20 shapes, one thread, 2x2 stride 2, forward / backward
// in us (128x16x32x32; 128x64x8x8):
//   max  dnnl NHWC 118/448; 30/69     tbb NHWC 399/1491; 74/246
//   max  dnnl NCHW 332/1992; 85/230   tbb NCHW 695/1825; 425/425
//   avg  dnnl NHWC 107/166; 29/42     tbb NHWC 468/1386; 79/129
//   global average pool: tbb and dnnl equal on NCHW (188/134), tbb 100x
//   faster on NHWC (dnnl takes a reference loop there)
// so oneDNN serves max and average pooling on NCHW and NHWC; the TBB kernels
// serve CHWN and every global average pool.
#include "kernels/pooling/pooling.h"

#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {
namespace {

bool supports_all(const PoolDesc&) { return true; }

constexpr PoolKernel kKernels[] = {
    {"dnnl", Isa::kAvx2, pool_dnnl_supports, maxpool_forward_dnnl, maxpool_backward_dnnl,
     avgpool_forward_dnnl, avgpool_backward_dnnl, global_avgpool_forward_tbb,
     global_avgpool_backward_tbb},
    {"tbb", Isa::kAvx2, supports_all, maxpool_forward_tbb, maxpool_backward_tbb,
     avgpool_forward_tbb, avgpool_backward_tbb, global_avgpool_forward_tbb,
     global_avgpool_backward_tbb},
    {"ref", Isa::kRef, supports_all, maxpool_forward_ref, maxpool_backward_ref, avgpool_forward_ref,
     avgpool_backward_ref, global_avgpool_forward_ref, global_avgpool_backward_ref},
};

constexpr KernelList<PoolKernel> kList(kKernels);

}  // namespace

const KernelList<PoolKernel>& pool_kernels() { return kList; }

}  // namespace sparsetrain::kernels
