// Device helpers shared by the decode-step kernels (decode_attention.cu, fused_norms.cu): warp and
// block reductions, fp32 dot products of an activation row with a bf16 or f32 weight row, 8-wide weight loads.
// Internal linkage (anonymous namespace): each .cu file gets its own copy.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "ling/kernels/reduce.cuh"

namespace ling::cuda {

using kernels::block_sum_d;  // fp64 block sum (ling/kernels/reduce.cuh)

namespace {

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// 8 consecutive weights as floats (one 16-byte load for bf16, two for f32).
__device__ __forceinline__ void load8(const __nv_bfloat16* w, float (&f)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(w));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 v = __bfloat1622float2(h[j]);
    f[2 * j] = v.x;
    f[2 * j + 1] = v.y;
  }
}
__device__ __forceinline__ void load8(const float* w, float (&f)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(w)), b = __ldg(reinterpret_cast<const float4*>(w + 4));
  f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

// f · x[0..8) for 8 weights already loaded and 16-byte aligned fp32 activations (read through the read-only
// path), summed in index order.
__device__ __forceinline__ float dot8(const float (&f)[8], const float* __restrict__ x) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x));
  const float4 b = __ldg(reinterpret_cast<const float4*>(x + 4));
  return f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
}

// Dot product of x[K] (fp32) and a weight row by one warp with four 16-byte weight loads in flight per lane
// (K % 8 == 0, 16-byte aligned row and x); one element per lane and step otherwise.
template <typename T>
__device__ __forceinline__ float warp_dot_u(const float* __restrict__ x, const T* __restrict__ w, int64_t K) {
  float acc = 0.0f;
  if ((K & 7) != 0 || (reinterpret_cast<uintptr_t>(w) & 15) != 0 || (reinterpret_cast<uintptr_t>(x) & 15) != 0) {
    for (int64_t i = threadIdx.x & 31; i < K; i += 32) acc += x[i] * ld(w + i);
    return warp_sum(acc);
  }
  int64_t i = int64_t(threadIdx.x & 31) * 8;
  for (; i + 768 < K; i += 1024) {
    float f[4][8];
#pragma unroll
    for (int u = 0; u < 4; ++u) load8(w + i + u * 256, f[u]);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc += dot8(f[u], x + i + u * 256);
  }
  for (; i < K; i += 256) {
    float f[8];
    load8(w + i, f);
    acc += dot8(f, x + i);
  }
  return warp_sum(acc);
}


}  // namespace
}  // namespace ling::cuda
