// The last-CTA residual add + RMSNorm (AddNormTail, norm.h) for kernels whose CTAs together write one row d:
// every thread of every CTA calls add_norm_tail after its own writes of d; the CTA counted last (a device counter
// it resets) runs h += d, y = RMSNorm(h) · w with launch_add_rms_norm's arithmetic (fp32 add, fp64 sum of squares
// per thread over its float4s, then the block sum; (v · inv) · w), reading d and h through L2. Device code,
// internal linkage.
#pragma once
#include <cuda_runtime.h>

#include "ling/kernels/norm.h"
#include "ling/kernels/reduce.cuh"

namespace ling::kernels {
namespace {

__device__ __forceinline__ void add_norm_tail(const AddNormTail& t, const float* d) {
  __shared__ bool last;
  __shared__ double red[32];
  __threadfence();  // this thread's part of d is visible device-wide before its CTA is counted
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(t.counter, 1u) == gridDim.x * gridDim.y * gridDim.z - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const AddRmsNormParams& p = t.norm;
  double ss = 0.0;
  for (int64_t i = int64_t(threadIdx.x) * 4; i < p.dim; i += int64_t(blockDim.x) * 4) {
    float4 v = __ldcg(reinterpret_cast<const float4*>(p.h + i));
    const float4 a = __ldcg(reinterpret_cast<const float4*>(d + i));
    v.x += a.x, v.y += a.y, v.z += a.z, v.w += a.w;
    *reinterpret_cast<float4*>(p.h + i) = v;
    ss += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
  }
  ss = block_sum_d(ss, red);
  if (threadIdx.x == 0) *t.counter = 0;  // every CTA has counted: ready for the next launch
  const float inv = inv_rms(ss, p.dim, p.eps);
  for (int64_t i = int64_t(threadIdx.x) * 4; i < p.dim; i += int64_t(blockDim.x) * 4) {
    const float4 v = *reinterpret_cast<const float4*>(p.h + i), g = *reinterpret_cast<const float4*>(p.w + i);
    *reinterpret_cast<float4*>(p.y + i) =
        make_float4((v.x * inv) * g.x, (v.y * inv) * g.y, (v.z * inv) * g.z, (v.w * inv) * g.w);
  }
}

}  // namespace
}  // namespace ling::kernels
