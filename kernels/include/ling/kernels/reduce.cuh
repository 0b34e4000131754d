// Block-wide reductions shared by the norm kernels and the backend's own kernels: the fp64 sum of squares the
// reference takes (ref::rms_norm). Device code (include from .cu files only).
#pragma once
#include <cuda_runtime.h>

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

}  // namespace ling::kernels
