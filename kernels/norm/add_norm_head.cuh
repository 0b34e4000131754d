// The add + norm head (AddNormHead, norm.h) inside the kernel that consumes the normed row: add_norm_head_begin,
// before the programmatic-launch wait, copies the norm weights into shared memory (cp.async: constant data in
// flight across the wait without holding registers); add_norm_head, after it, reads h_in and d through L2 (the
// previous kernels wrote them), sums the squares in fp64 (per thread over its float4s in index order, then
// block_sum_d) and leaves RMSNorm(h_in + d) · w in the CTA's shared memory with launch_add_rms_norm's arithmetic
// (fp32 add, inv = 1 / sqrt(ss / dim + eps), (v · inv) · w). CTA 0 also writes h_out and y. Every thread of the CTA
// calls both (add_norm_head synchronises). smem: add_norm_head_smem(p) bytes of 16-byte aligned dynamic shared
// memory — the normed row, then the weights. U: float4s of h and d per thread loaded together (registers held
// while they are in flight). Device code, internal linkage.
#pragma once
#include <cuda_runtime.h>

#include "common/mma.cuh"
#include "ling/kernels/norm.h"
#include "ling/kernels/reduce.cuh"

namespace ling::kernels {
namespace {

// Before the wait, for any head over a row of n values: its n weights into shared memory right after the row (the
// layout both heads use), by cp.async.
__device__ __forceinline__ void head_weights_begin(float* smem, const float* w, int64_t n) {
  cp_async_row(smem + n, w, n / 4);
  cp_async_commit();
}

__device__ __forceinline__ void add_norm_head_begin(const AddNormHead& p, float* smem) {
  head_weights_begin(smem, p.w, p.dim);
}

template <int U>
__device__ __forceinline__ void add_norm_head(const AddNormHead& p, float* smem) {
  __shared__ double red[32];
  const int64_t n4 = p.dim / 4;
  float4* x4 = reinterpret_cast<float4*>(smem);
  const float4* w4 = reinterpret_cast<const float4*>(smem + p.dim);
  const float4* h4 = reinterpret_cast<const float4*>(p.h_in);
  const float4* d4 = reinterpret_cast<const float4*>(p.d);
  double ss = 0.0;
  for (int64_t i0 = threadIdx.x; i0 < n4; i0 += int64_t(U) * blockDim.x) {
    float4 v[U], a[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t i = i0 + int64_t(u) * blockDim.x;
      if (i < n4) {
        v[u] = __ldcg(h4 + i);
        if (d4) a[u] = __ldcg(d4 + i);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t i = i0 + int64_t(u) * blockDim.x;
      if (i < n4) {
        if (d4) v[u].x += a[u].x, v[u].y += a[u].y, v[u].z += a[u].z, v[u].w += a[u].w;
        x4[i] = v[u];
        ss += double(v[u].x) * v[u].x + double(v[u].y) * v[u].y + double(v[u].z) * v[u].z + double(v[u].w) * v[u].w;
      }
    }
  }
  ss = block_sum_d(ss, red);
  const float inv = inv_rms(ss, p.dim, p.eps);
  cp_async_wait_all();  // this thread's copies of the weights: it reads only those below
  const bool writer = blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0;
  float4* ho = reinterpret_cast<float4*>(p.h_out);
  float4* y4 = reinterpret_cast<float4*>(p.y);
  for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
    const float4 v = x4[i], g = w4[i];
    const float4 o = make_float4((v.x * inv) * g.x, (v.y * inv) * g.y, (v.z * inv) * g.z, (v.w * inv) * g.w);
    x4[i] = o;
    if (writer) {
      if (ho) ho[i] = v;
      y4[i] = o;
    }
  }
  __syncthreads();
}

}  // namespace
}  // namespace ling::kernels
