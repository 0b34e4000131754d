// The gate head (GateHead, norm.h) inside the kernel that consumes the gated row: gate_head_begin, before the
// programmatic-launch wait, copies the group norm's weights into shared memory (cp.async: constant data);
// gate_head, after it, copies o and the gate row (written by earlier kernels) the same way, then forms
// GroupRMSNorm(o) · w ⊙ sigmoid(gate) in the CTA's shared memory with launch_group_norm_gate's arithmetic: per
// group, thread t's fp64 sum of squares over elements t, t + 256, … in order, lanes folded by xor shuffles and the
// warps added in index order (block_sum_d), inv = 1 / sqrt(ss / gs + eps), ((o · inv) · w) · (1 / (1 + e^−gate)).
// CTAs of 256 threads; every thread calls both (gate_head synchronises). smem: gate_head_smem(p) bytes of 16-byte
// aligned dynamic shared memory — the gated row (o at first), the weights, the gate. Device code, internal linkage.
#pragma once
#include <cuda_runtime.h>

#include "norm/add_norm_head.cuh"

namespace ling::kernels {
namespace {

__device__ __forceinline__ void gate_head_begin(const GateHead& p, float* smem) {
  head_weights_begin(smem, p.w, p.width);
}

__device__ __forceinline__ void gate_head(const GateHead& p, float* smem) {
  __shared__ double red[8][kGateHeadMaxGroups];
  float* xs = smem;
  const float* ws = smem + p.width;
  float* gs_row = smem + 2 * p.width;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  cp_async_row(xs, p.o, p.width / 4);
  cp_async_row(gs_row, p.gate, p.width / 4);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  const int64_t G = p.groups, gs = p.width / G;
  for (int64_t g = 0; g < G; ++g) {
    const float* og = xs + g * gs;
    double ss = 0.0;
    for (int64_t i = tid; i < gs; i += 256) ss += double(og[i]) * double(og[i]);
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) red[warp][g] = ss;
  }
  __syncthreads();
  for (int64_t g = 0; g < G; ++g) {
    double ss = 0.0;
    for (int q = 0; q < 8; ++q) ss += red[q][g];
    const float inv = inv_rms(ss, gs, p.eps);
    for (int64_t i = g * gs + tid; i < (g + 1) * gs; i += 256) {
      const float v = (xs[i] * inv) * ws[i];
      xs[i] = v * sigmoid(gs_row[i]);
    }
  }
  __syncthreads();
}

}  // namespace
}  // namespace ling::kernels
