// Seeded uniform random fills (include/ling/kernels/fill.h): splitmix64 of (seed, index), grid-stride loop.
#include <cuda_bf16.h>

#include "common/check.h"
#include "ling/kernels/fill.h"

namespace ling::kernels {
namespace {

__device__ __forceinline__ float uniform01(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);
}

template <typename T>
__global__ void fill_kernel(T* x, int64_t n, float lo, float hi, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float u = lo + (hi - lo) * uniform01(seed, uint64_t(i));
    if constexpr (sizeof(T) == 4) {
      x[i] = u;
    } else {
      x[i] = __bfloat16_as_ushort(__float2bfloat16_rn(u));
    }
  }
}

template <typename T>
void fill(T* x, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  LING_CHECK(n >= 0 && (x || n == 0), "fill: null buffer or negative size ", n);
  if (n == 0) return;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 132 * 32);
  fill_kernel<T><<<unsigned(blocks), 256, 0, stream>>>(x, n, lo, hi, seed);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void launch_fill_uniform_f32(float* x, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  fill(x, n, lo, hi, seed, stream);
}
void launch_fill_uniform_bf16(uint16_t* x, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  fill(x, n, lo, hi, seed, stream);
}

}  // namespace ling::kernels
