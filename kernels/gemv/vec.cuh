// Device helpers of the decode GEMVs (gemv.cu, moe/*.cu): 8 consecutive weights as floats through one 16-byte
// load (bf16) or two (fp32), the 8-wide dot with fp32 activations, warp sums. Internal linkage: each .cu gets
// its own copy. Limits: the pointers given to load8 / dot8 must be 16-byte aligned.
#pragma once
#include <cstdint>

namespace ling::kernels {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// 8 consecutive bf16 weights kept as raw bits (4 registers instead of 8) until unpack8 widens them.
__device__ __forceinline__ uint4 load_raw8(const uint16_t* w) { return __ldg(reinterpret_cast<const uint4*>(w)); }

// bf16 → fp32 is exact: the 16 bits become the high half of the float (element 0 is the low half of a word).
__device__ __forceinline__ void unpack8(const uint4& raw, float (&f)[8]) {
  const uint32_t u[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    f[2 * j] = __uint_as_float(u[j] << 16);
    f[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
  }
}
__device__ __forceinline__ void load8(const uint16_t* w, float (&f)[8]) { unpack8(load_raw8(w), f); }
__device__ __forceinline__ void load8(const float* w, float (&f)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(w)), b = __ldg(reinterpret_cast<const float4*>(w + 4));
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

// Σ f[i]·x[i] over 8 values in index order (fp32 FMA chain), x read through the read-only path.
__device__ __forceinline__ float dot8(const float (&f)[8], const float* __restrict__ x) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x)), b = __ldg(reinterpret_cast<const float4*>(x + 4));
  float s = f[0] * a.x;
  s = fmaf(f[1], a.y, s), s = fmaf(f[2], a.z, s), s = fmaf(f[3], a.w, s);
  s = fmaf(f[4], b.x, s), s = fmaf(f[5], b.y, s), s = fmaf(f[6], b.z, s), s = fmaf(f[7], b.w, s);
  return s;
}

// dot8's products and sums (the same FMA chain) with x in registers or shared memory.
__device__ __forceinline__ float dot8_local(const float (&f)[8], const float* x) {
  float s = f[0] * x[0];
#pragma unroll
  for (int j = 1; j < 8; ++j) s = fmaf(f[j], x[j], s);
  return s;
}

// dot8 of raw bf16 bits (load_raw8): the same products and sums as load8 + dot8.
__device__ __forceinline__ float dot8_raw(const uint4& raw, const float* __restrict__ x) {
  float f[8];
  unpack8(raw, f);
  return dot8(f, x);
}

// 8 weights as loaded, widened only in the dot: bf16 as raw bits (4 registers), fp32 as floats (8).
template <typename T>
struct W8;
template <>
struct W8<uint16_t> {
  uint4 raw;
  __device__ __forceinline__ void load(const uint16_t* w) { raw = load_raw8(w); }
  __device__ __forceinline__ float dot(const float* __restrict__ x) const { return dot8_raw(raw, x); }
};
// bf16 widened at the load (8 registers), as load8: the form GemvParams::raw_bf16 = false keeps to compare.
struct W8Wide {
  float f[8];
  __device__ __forceinline__ void load(const uint16_t* w) { load8(w, f); }
  __device__ __forceinline__ float dot(const float* __restrict__ x) const { return dot8(f, x); }
};
template <>
struct W8<float> {
  float f[8];
  __device__ __forceinline__ void load(const float* w) { load8(w, f); }
  __device__ __forceinline__ float dot(const float* __restrict__ x) const { return dot8(f, x); }
};

// Σ x[i]·w[i] over K values (K % 8 == 0, x and w 16-byte aligned) by one warp: lanes over K in 8-wide steps,
// U 16-byte weight loads per lane issued together (a row of K ≤ U·256 is one round trip to memory), then the
// 8-wide dots in index order (the same sums for every U), then the warp sum.
template <int U, typename T>
__device__ __forceinline__ float warp_dot(const float* __restrict__ x, const T* __restrict__ w, int64_t K) {
  float acc = 0.0f;
  for (int64_t i = int64_t(threadIdx.x & 31) * 8; i < K; i += U * 256) {
    float f[U][8];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i + u * 256 < K) load8(w + i + u * 256, f[u]);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i + u * 256 < K) acc += dot8(f[u], x + i + u * 256);
  }
  return warp_sum(acc);
}

// Two bf16 rows against the same x (a gate and an up row): the loads of both rows for U·256 values at a time go
// out together (raw bits, so a 2,048-wide pair is one round trip in 64 registers); each row's sums are those of
// warp_dot<U>. dot2_load issues one such step (columns i + 256u); warp_dot2_from starts from a step already
// loaded at the lane's first column (e.g. before a programmatic-launch wait).
template <int U>
struct Dot2Chunk {
  uint4 r0[U], r1[U];
};
template <int U>
__device__ __forceinline__ void dot2_load(const uint16_t* __restrict__ w0, const uint16_t* __restrict__ w1, int64_t K,
                                          int64_t i, Dot2Chunk<U>& c) {
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (i + u * 256 < K) c.r0[u] = load_raw8(w0 + i + u * 256), c.r1[u] = load_raw8(w1 + i + u * 256);
}
template <int U>
__device__ __forceinline__ void warp_dot2_from(const float* __restrict__ x, const uint16_t* __restrict__ w0,
                                               const uint16_t* __restrict__ w1, int64_t K, Dot2Chunk<U>& c, float& a0,
                                               float& a1) {
  float s0 = 0.0f, s1 = 0.0f;
  for (int64_t i = int64_t(threadIdx.x & 31) * 8; i < K; i += U * 256) {
    if (i >= U * 256) dot2_load<U>(w0, w1, K, i, c);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i + u * 256 < K) s0 += dot8_raw(c.r0[u], x + i + u * 256);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i + u * 256 < K) s1 += dot8_raw(c.r1[u], x + i + u * 256);
  }
  a0 = warp_sum(s0), a1 = warp_sum(s1);
}
// warp_dot2_from's sums (each accumulator's FMA chain unchanged) for K ≤ U·256 (one step, already loaded), both
// rows' dots of each 8 columns taken together on one load of x's 8 values: x is live 8 values at a time instead of
// U·8 (fewer registers, more CTAs per SM).
template <int U>
__device__ __forceinline__ void warp_dot2_one_lean(const float* __restrict__ x, int64_t K, const Dot2Chunk<U>& c,
                                                   float& a0, float& a1) {
  float s0 = 0.0f, s1 = 0.0f;
  const int64_t i = int64_t(threadIdx.x & 31) * 8;
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (i + u * 256 < K) {
      float xv[8], f[8];
      load8(x + i + u * 256, xv);
      unpack8(c.r0[u], f);
      s0 += dot8_local(f, xv);
      unpack8(c.r1[u], f);
      s1 += dot8_local(f, xv);
    }
  a0 = warp_sum(s0), a1 = warp_sum(s1);
}
// The CTA's (8 warps) per-thread partial sums of M ≤ MT rows added in a fixed order: lanes by xor shuffles, then the
// warps in index order; thread m < M returns row m's total, the other threads 0. red: shared [8][MT].
template <int MT>
__device__ __forceinline__ float block_rows_sum(const float (&acc)[MT], int M, float (&red)[8][MT]) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const float v = warp_sum(acc[m]);
    if (lane == 0) red[warp][m] = v;
  }
  __syncthreads();
  float v = 0.0f;
  if (threadIdx.x < M)
    for (int q = 0; q < 8; ++q) v += red[q][threadIdx.x];
  return v;
}

// One weight row against M ≤ MT rows of x by a CTA of 256 threads (8 warps over K in 2,048-value strides, sums
// in warp order, deterministic): thread m < M returns Σ_i x[m, i]·w[i], the other threads 0. red: shared [8][MT].
// The first 2,048 weights are loaded before `wait` runs (the caller's programmatic-launch wait: constant data in
// flight while the previous kernel finishes); x is read only after it.
template <int MT, typename T, typename Wait>
__device__ __forceinline__ float block_row_dot(const float* __restrict__ x, int64_t ldx, const T* __restrict__ wr,
                                               int M, int64_t K, float (&red)[8][MT], Wait wait) {
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  int64_t i = int64_t(threadIdx.x) * 8;
  float f[8];
  if (i < K) load8(wr + i, f);
  wait();
  for (bool first = true; i < K; i += 2048, first = false) {
    if (!first) load8(wr + i, f);
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m < M) acc[m] += dot8(f, x + m * ldx + i);
  }
  return block_rows_sum<MT>(acc, M, red);
}

// The 128-byte line holding p into L2 (a hint: nothing waits for it).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace
}  // namespace ling::kernels
