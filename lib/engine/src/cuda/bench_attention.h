// Flash-attention prefill rows of `ling bench --backend cuda` (bench_attention.cpp), with their own ceiling:
//   gemm.ceiling: one cuBLASLt bf16 GEMM 8192×8192×8192 (fp32 out), FLOPs 2·8192³;
//   attention.prefill: causal bf16 flash attention (kernels/include/ling/kernels/attention.h) at each CTA layout
//   (query rows per warp / per CTA: the default, 16/128, 32/256) of T = 8192 queries at Ling-2.5-1T MLA prefill dims
//   (nh 64, dk 192, dv 128) at q_pos0 0 (S 8192) and as the last chunk of a 32K and a 128K prefill
//   (q_pos0 = S − 8192), and Ling-2.0 GQA dims (nh 64, nkv 8, d 128, T = S = 8192).
//   FLOPs count only the visible (query, key) pairs: 2·(dk + dv)·nh·Σ_i (q_pos0 + i + 1); bytes: q, the visible
//   k/v rows and the fp32 o once. The shape text carries the share of the gemm.ceiling TFLOP/s of the same run.
#pragma once
#include <functional>
#include <vector>

#include "ling/engine/bench_cuda.h"

namespace ling {

// Times fn into row (median of the options' reps after warm-ups, L2 flushed): bench_cuda.cpp's time_calls.
using CudaTimeFn = std::function<void(const std::function<void()>& fn, CudaBenchRow& row)>;

// The gemm.ceiling row first, then the attention rows.
std::vector<CudaBenchRow> attention_bench_rows(const CudaBenchOptions& options, const CudaTimeFn& time);

}  // namespace ling
