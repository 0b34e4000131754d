// Partial RoPE, NeoX or interleaved (architecture.md §2.5 step 3, §2.7 step 4), and per-head QK-norm fused
// with it (§2.5 step 2). Params are core/op_params.h's, the ones ref::rope and ref::qk_norm_rope take; pointers
// are device pointers. Angles f32(pos) · inv_freq in f32, cos/sin in double rounded to f32, as the reference.
#pragma once
#include <cuda_runtime_api.h>

#include "ling/core/op_params.h"

namespace ling::kernels {

// In place; rope_dim ≤ 2048.
void launch_rope(const RopeParams& p, cudaStream_t stream);
// One CTA per (row, head), the head staged in shared memory: hd ≤ kQkNormRopeMaxHead.
inline constexpr int64_t kQkNormRopeMaxHead = 1024;
void launch_qk_norm_rope(const QkNormRopeParams& p, cudaStream_t stream);

}  // namespace ling::kernels
