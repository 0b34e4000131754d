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
// dim ≤ 16384 and the buffers are 16-byte aligned (one 1024-thread CTA per row), else a strided loop.
// late_trigger (that register path, under programmatic launch): the next kernel is scheduled only after the row
// has been read and reduced instead of at once; the same values. d_first ([rows, dim] or null): a delta added
// before d — h = (h + d_first) + d, the values of two adds in that order (a residual add deferred from earlier).
void launch_add_rms_norm(const AddRmsNormParams& p, cudaStream_t stream, bool late_trigger = false,
                         const float* d_first = nullptr);
// o = GroupRMSNorm(o) · w ⊙ sigmoid(gate), in place.
void launch_group_norm_gate(const GroupNormGateParams& p, cudaStream_t stream);

}  // namespace ling::kernels
