// Block-wide reductions shared by the norm kernels and the backend's own kernels: the fp64 sum of squares the
// reference takes (ref::rms_norm), and the arithmetic every norm form repeats after it (the factor 1 / rms, the
// Lightning output gate's sigmoid). Device code (include from .cu files only).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace ling::kernels {

// Sum of v over the block (blockDim a multiple of 32, ≤ 1024); every thread gets the total. red: 32 doubles of
// shared memory. Lanes fold by xor shuffles, warps in index order (deterministic).
__device__ __forceinline__ double block_sum_d(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  double s = 0.0;
  for (int i = 0; i < int(blockDim.x >> 5); ++i) s += red[i];
  return s;
}

// 1 / rms from the fp64 sum of squares of n values, rounded to float: ref::rms_norm's factor.
__device__ __forceinline__ float inv_rms(double ss, int64_t n, double eps) {
  return float(1.0 / sqrt(ss / double(n) + eps));
}

// The Lightning output gate's factor 1 / (1 + e^−g) (ref::group_norm_gate's: the normed value times this).
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

}  // namespace ling::kernels
