// Causal flash attention on CUDA cores (attention.h, F32 path): fp32 q/k/v/o, any dk, dv ≤ 256, fp32-accurate.
// One CTA = 4 warps = 16 query rows of one head (warp w: rows 4w..4w+3). Keys stream through shared memory in
// tiles of 32 (K padded to dk + 1 floats per row: lane j reads key j conflict-free). Per row and tile: lane j
// computes the score of key j, the warp forms the tile maximum and sum by shuffles (online softmax, expf), and
// each lane accumulates output columns lane, lane + 32, ... (≤ 8) with the weights broadcast by shuffles.
// Simple on purpose: it is the accuracy oracle for fp32 models (fixture head dims 32–64), not the fast path.
#include <cmath>

#include "attention/flash_attention.cuh"
#include "common/check.h"
#include "common/launch.cuh"

namespace ling::kernels::flash {
namespace {

constexpr int kRows = 16, kKeys = 32, kThreads = 128, kRowsPerWarp = kRows / (kThreads / 32), kMaxCols = 8;

size_t smem_bytes(int dk, int dv) { return size_t(kRows * dk + kKeys * (dk + 1) + kKeys * dv) * sizeof(float); }

__global__ void __launch_bounds__(kThreads) flash_f32_kernel(Args a) {
  extern __shared__ float sm[];
  const int dk = a.dk, dv = a.dv, kp = dk + 1;
  float* sQ = sm;                  // [16][dk]
  float* sK = sQ + kRows * dk;     // [32][dk + 1]
  float* sV = sK + kKeys * kp;     // [32][dv]
  const int h = blockIdx.x, g = h / a.G;
  const int64_t m0 = int64_t(gridDim.y - 1 - blockIdx.y) * kRows;
  const int rows = int(min64(kRows, a.T - m0));
  const int64_t n_end = min64(a.S, a.q_pos0 + m0 + rows);
  const float* qg = static_cast<const float*>(a.q) + m0 * a.ldq + int64_t(h) * dk;
  const float* kg = static_cast<const float*>(a.k) + int64_t(g) * dk;
  const float* vg = static_cast<const float*>(a.v) + int64_t(g) * dv;
  for (int idx = threadIdx.x; idx < kRows * dk; idx += kThreads) {
    const int r = idx / dk, c = idx % dk;
    sQ[idx] = r < rows ? qg[r * a.ldq + c] : 0.0f;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float acc[kRowsPerWarp][kMaxCols], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < kMaxCols; ++c) acc[r][c] = 0.0f;
  }
  for (int64_t n0 = 0; n0 < n_end; n0 += kKeys) {
    __syncthreads();  // the previous tile is consumed (and sQ is written on the first pass)
    for (int idx = threadIdx.x; idx < kKeys * dk; idx += kThreads) {
      const int r = idx / dk, c = idx % dk;
      sK[r * kp + c] = n0 + r < n_end ? kg[(n0 + r) * a.ldk + c] : 0.0f;
    }
    for (int idx = threadIdx.x; idx < kKeys * dv; idx += kThreads) {
      const int r = idx / dv, c = idx % dv;
      sV[idx] = n0 + r < n_end ? vg[(n0 + r) * a.ldv + c] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      if (r >= rows) break;  // warp-uniform
      const int64_t pos = a.q_pos0 + m0 + r, key = n0 + lane;
      if (n0 > pos) continue;  // the whole tile is above this row (later rows may still see it)
      float d = 0.0f;
      for (int c = 0; c < dk; ++c) d = fmaf(sQ[r * dk + c], sK[lane * kp + c], d);
      const float s = key <= pos && key < n_end ? d * a.scale : -INFINITY;
      float mx = s;
#pragma unroll
      for (int off = 16; off; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float mn = fmaxf(m[rr], mx);  // finite: key n0 ≤ pos is visible
      const float corr = expf(m[rr] - mn), p = expf(s - mn);
      m[rr] = mn;
      float sum = p;
#pragma unroll
      for (int off = 16; off; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      l[rr] = l[rr] * corr + sum;
#pragma unroll
      for (int c = 0; c < kMaxCols; ++c) acc[rr][c] *= corr;
      for (int j = 0; j < kKeys; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int c = 0; c < kMaxCols; ++c)
          if (lane + 32 * c < dv) acc[rr][c] = fmaf(pj, sV[j * dv + lane + 32 * c], acc[rr][c]);
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    if (r >= rows) break;
    float* og = a.o + (m0 + r) * a.ldo + int64_t(h) * dv;
    const float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;
#pragma unroll
    for (int c = 0; c < kMaxCols; ++c)
      if (lane + 32 * c < dv) og[lane + 32 * c] = acc[rr][c] * inv;
  }
}

}  // namespace

void launch_f32(const Args& a, cudaStream_t stream) {
  const size_t smem = smem_bytes(a.dk, a.dv);
  set_max_dynamic_smem(flash_f32_kernel, int(smem));
  const dim3 grid(unsigned(a.nh), unsigned((a.T + kRows - 1) / kRows));
  flash_f32_kernel<<<grid, kThreads, smem, stream>>>(a);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels::flash
