// Warpgroup (4 warps, 128 threads) tensor-core helpers for sm_90a: wgmma.mma_async bf16 × bf16 → fp32 with
// shared-memory matrix descriptors in the no-swizzle layout, and the fences the asynchronous proxy needs.
// No-swizzle layout: a matrix is tiled into core matrices of 8 rows × 16 bytes (8 bf16), each stored as 128
// contiguous bytes (row i at +16·i); `lbo` is the byte distance between core matrices adjacent along K, `sbo`
// along M/N. For a K-major operand the 16 bytes run along K; for an MN-major (transposed) one they run along M/N
// and the 8 rows are 8 values of K — the PTX ISA's "leading dimension byte offset" of the interleaved MN-major
// layout is likewise the step between groups of 8 K values, its "stride" the step between 16-byte M/N chunks.
// kernels::wgmma_selftest (tests/kernels/test_wgmma.cpp) checks both majors against host products.
// Accumulators of m64nN: warp w of the warpgroup holds rows 16w..16w+15; d[4j + {0,1}] = row 16w + g, columns
// 8j + 2t + {0,1}; d[4j + {2,3}] = row 16w + g + 8 (lane = 4g + t) — the mma.sync C layout repeated over N/8.
// A from registers uses the mma.sync m16n8k16 A fragment of the warp's 16 rows.
#pragma once
#include <cstdint>

#include "common/mma.cuh"

namespace ling::kernels {

__device__ __forceinline__ uint64_t smem_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  const uint64_t a = smem_addr(p);
  return ((a & 0x3FFFFu) >> 4) | (uint64_t((lbo >> 4) & 0x3FFFu) << 16) | (uint64_t((sbo >> 4) & 0x3FFFu) << 32);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Generic-proxy writes to shared memory (st.shared, cp.async) made visible to the asynchronous proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Named barriers between warpgroups (ids 1..15; 0 is __syncthreads): `arrive` signals without waiting (a producer),
// `sync` waits until `threads` threads have arrived or synced (a consumer); shared-memory writes before either are
// visible to the threads that pass the sync.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Keeps the compiler from moving reads or writes of accumulator registers across wgmma issue / wait.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Output operand lists of the wrappers below: the accumulator fragment d[0..N) read and written.
// The same for A fragments that an issued register-A wgmma still reads (kept in their registers until its wait).
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
}

#define LING_WGMMA_D8(o)                                                                                      \
  "+f"(d[(o) + 0]), "+f"(d[(o) + 1]), "+f"(d[(o) + 2]), "+f"(d[(o) + 3]), "+f"(d[(o) + 4]), "+f"(d[(o) + 5]), \
      "+f"(d[(o) + 6]), "+f"(d[(o) + 7])
#define LING_WGMMA_D16 LING_WGMMA_D8(0), LING_WGMMA_D8(8)
#define LING_WGMMA_D32 LING_WGMMA_D16, LING_WGMMA_D8(16), LING_WGMMA_D8(24)
#define LING_WGMMA_D64 LING_WGMMA_D32, LING_WGMMA_D8(32), LING_WGMMA_D8(40), LING_WGMMA_D8(48), LING_WGMMA_D8(56)

// d[64×64] (+)= A[64×16]·B[64×16]ᵀ, A and B from shared memory, both K-major. accumulate = 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n64k16_ss(float d[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : LING_WGMMA_D32
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// d[64×32] (+)= A[64×16]·B[32×16]ᵀ, A and B from shared memory, both K-major. accumulate = 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n32k16_ss(float d[16], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
      "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
      : LING_WGMMA_D16
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// d[64×128] (+)= A[64×16]·B[16×128], A from shared memory K-major, B from shared memory MN-major (transposed
// operand). accumulate = 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k16_ss_tb(float d[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 1;\n}\n"
      : LING_WGMMA_D64
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// d[64×64] (+)= A[64×16]·B[64×16]ᵀ, A from registers (mma.sync A fragments), B from shared memory K-major.
__device__ __forceinline__ void wgmma_m64n64k16_rs(float d[32], const uint32_t a[4], uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : LING_WGMMA_D32
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

// d[64×128] (+)= A[64×16]·B[16×128], A from registers, B from shared memory MN-major (contiguous along N,
// transposed operand). accumulate = 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k16_rs_tb(float d[64], const uint32_t a[4], uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : LING_WGMMA_D64
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

}  // namespace ling::kernels

#undef LING_WGMMA_D8
#undef LING_WGMMA_D16
#undef LING_WGMMA_D32
#undef LING_WGMMA_D64
