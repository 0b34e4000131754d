// Internal interface of the flash-attention kernels (attention.h): the checked, resolved arguments that
// flash_attention.cu hands to the two paths, and their launchers (flash_bf16.cu, flash_f32.cu).
// Every size and stride here has been validated; strides are resolved (no 0 = dense left).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels::flash {

struct Args {
  const void *q, *k, *v;
  float* o;
  int64_t ldq, ldk, ldv, ldo;  // elements
  int64_t T, S, q_pos0;
  int nh, G;                   // query heads, query heads per KV head
  int dk, dv;
  float scale;
};

// ex2.approx (relative error ~2^-22; exp2(−inf) = 0): the softmax exponent of the tensor-core path.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

bool bf16_dims_supported(int dk, int dv);
int key_tile(int warp_rows);  // keys per tile of the BF16 kernel for warp_rows (0 = 32)
// warp_rows 16 or 32 query rows per warp, cta_rows 128 or 256 (256 only with warp_rows 32): resolved by the
// launcher from FlashAttentionParams (attention.h).
void launch_bf16(const Args& a, int warp_rows, int cta_rows, cudaStream_t stream);  // dims: bf16_dims_supported
void launch_f32(const Args& a, cudaStream_t stream);   // dk, dv ≤ 256

}  // namespace ling::kernels::flash
