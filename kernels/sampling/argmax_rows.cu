// Row-wise argmax of fp32 logits (sampling.h): one CTA of 1024 threads per row, each thread scans a strided
// slice (16-byte loads, four in flight, when rows are 16-byte aligned) keeping (max, lowest index), then a warp
// and a block reduction with the same rule (larger value, or equal value and lower index) — a total order, so
// the result equals ref::argmax for NaN-free rows whatever the scan order.
#include <cmath>

#include "common/check.h"
#include "ling/kernels/sampling.h"

namespace ling::kernels {
namespace {

__device__ __forceinline__ void better(float& v, int64_t& i, float ov, int64_t oi) {
  if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
}

__global__ void __launch_bounds__(1024) k_argmax_rows(ArgmaxRowsParams p, int64_t ld, bool vec) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  const float* x = p.logits + int64_t(blockIdx.x) * ld;
  float v = -INFINITY;
  int64_t idx = INT64_MAX;
  int64_t i0 = 0;
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int64_t V4 = p.V / 4;
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < V4; j += blockDim.x) {
      const float4 q = __ldg(x4 + j);
      better(v, idx, q.x, 4 * j), better(v, idx, q.y, 4 * j + 1), better(v, idx, q.z, 4 * j + 2);
      better(v, idx, q.w, 4 * j + 3);
    }
    i0 = V4 * 4;
  }
  for (int64_t i = i0 + threadIdx.x; i < p.V; i += blockDim.x) better(v, idx, x[i], i);
  for (int o = 16; o > 0; o >>= 1) better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
  if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = v, si[threadIdx.x >> 5] = idx;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = sv[threadIdx.x], idx = si[threadIdx.x];
    for (int o = 16; o > 0; o >>= 1)
      better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    // A row of −inf only: every value ties at −inf and the lowest index, 0, wins as in ref::argmax.
    if (threadIdx.x == 0) p.ids[blockIdx.x] = int32_t(idx == INT64_MAX ? 0 : idx);
  }
}

}  // namespace

void launch_argmax_rows(const ArgmaxRowsParams& p, cudaStream_t stream) {
  const int64_t ld = p.ld ? p.ld : p.V;
  LING_CHECK(p.V >= 1 && p.V <= INT32_MAX && ld >= p.V, "launch_argmax_rows: V = ", p.V, ", ld = ", ld, " invalid");
  LING_CHECK(p.n >= 0 && p.n < (int64_t(1) << 31), "launch_argmax_rows: n = ", p.n, " out of range");
  if (p.n == 0) return;
  LING_CHECK(p.logits && p.ids, "launch_argmax_rows: logits or ids is null");
  const bool vec = ld % 4 == 0 && (reinterpret_cast<uintptr_t>(p.logits) & 15) == 0;
  k_argmax_rows<<<unsigned(p.n), 1024, 0, stream>>>(p, ld, vec);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
