// Decode-sized GEMV (architecture.md §2, every projection at batch ≤ 16): y[M, N] (+)= x[M, K]·Wᵀ (+ bias[N])
// with fp32 accumulation, W bf16 [N, K] (or fp32 [N, K] for the MoE router, §2.4), each weight row streamed once
// from memory for all M rows of x. Limits: 1 ≤ M ≤ 16 (larger M belongs to cuBLASLt), K % 8 == 0, x and W
// 16-byte aligned, ldx % 4 == 0; the launcher throws ling::Error otherwise. Asynchronous on `stream`, allocates
// nothing, never synchronises (safe inside CUDA graph capture). y must not overlap x or W.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels {

constexpr int64_t kGemvMaxM = 16;
// Up to this many rows a CTA computes one row (block per row); above it a warp does (warp per row).
constexpr int64_t kGemvBlockRowMaxN = 1024;

struct GemvParams {
  const float* x = nullptr;        // [M, K], row stride ldx (elements)
  int64_t ldx = 0;                 // 0 = K
  const uint16_t* w = nullptr;     // bf16 [N, K] row-major; exactly one of w / w_f32 is set
  const float* w_f32 = nullptr;    // fp32 [N, K] (router weights: fp32 FMA throughout)
  const float* bias = nullptr;     // [N] or null
  float* y = nullptr;              // [M, N], row stride ldy (elements)
  int64_t ldy = 0;                 // 0 = N
  int64_t M = 0, N = 0, K = 0;
  bool accumulate = false;         // y += x·Wᵀ (+ bias) instead of y =
  bool tensor_cores = true;        // bf16, 2 ≤ M, N > 1024: tensor-core tiles (false: the FMA path, to compare)
  bool raw_bf16 = true;            // bf16, M = 1, N > 1024: weights kept as raw bits until the dot (false: widened
                                   // at the load, twice the registers; the same sums, to compare)
};

// Throws ling::Error (one line naming the field) for M outside [1, 16], K % 8 != 0, misaligned x / W, both or
// neither weight pointer set. M·N == 0 launches nothing.
void launch_gemv(const GemvParams& p, cudaStream_t stream);

}  // namespace ling::kernels
