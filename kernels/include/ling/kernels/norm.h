// RMSNorm, GroupRMSNorm, the residual add fused with the next norm, and the Lightning output gate
// (architecture.md §2.2, §2.6 steps 9–10). Params are core/op_params.h's, the ones ref::rms_norm,
// ref::add_rms_norm and ref::group_norm_gate take; pointers are device pointers. fp32, fp64 sums of squares,
// the reference's operation order: outputs equal the reference's up to the order of the fp64 sum.
#pragma once
#include <cuda_runtime_api.h>

#include "ling/core/op_params.h"

namespace ling::kernels {

// y = RMSNorm(x) · w per group; in place allowed (x == y, same strides).
void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);
// h += d (d null: no add), y = RMSNorm(h) · w; rows packed. The row stays in registers when dim % 4 == 0,
// dim ≤ 16384 and the buffers are 16-byte aligned (one CTA per row, up to four float4 a thread), else a strided
// loop. threads: the register path's CTA size — 0 sizes it to the row (⌈dim / 16⌉ rounded up to a warp: 128
// threads at dim 2,048, so that the CTA finds room beside the kernels still running and starts before they end);
// a larger value (≤ 1024, a multiple of 32) spreads the row thinner.
void launch_add_rms_norm(const AddRmsNormParams& p, cudaStream_t stream, int threads = 0);
// o = GroupRMSNorm(o) · w ⊙ sigmoid(gate), in place.
void launch_group_norm_gate(const GroupNormGateParams& p, cudaStream_t stream);

}  // namespace ling::kernels
