// Shared-memory mbarriers and bulk copies (sm_90): a barrier armed with the bytes it expects completes its phase
// when that many bytes have landed (cp.async.bulk / cp.async.bulk.tensor with mbarrier::complete_tx); waiters
// spin on the phase parity; bulk L2 prefetches. Used by the TMA MLA kernel and the fused MoE decode kernel.
#pragma once
#include <cstdint>

#include "common/mma.cuh"

namespace ling::kernels {

__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// Make the initialised barriers visible to the async proxy (the copies that complete on them).
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also expects `bytes` more to land (0: the phase completes with this arrival alone).
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
// One plain arrival (no bytes expected).
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nwait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory into shared memory by the copy
// engine, completing on bar.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}

// `bytes` (a multiple of 16, 16-byte aligned) from global memory into L2, nothing waited for (a hint).
__device__ __forceinline__ void bulk_prefetch_l2(const void* src, unsigned bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(src), "r"(bytes) : "memory");
}

// Pieces first, first + stride, … of at most `piece` bytes of [p, p + bytes) into L2 (bytes rounded down to a
// multiple of 16): one thread walks them all with (0, 1), a grid shares them with (thread index, thread count).
__device__ __forceinline__ void bulk_prefetch_l2_pieces(const void* p, size_t bytes, size_t piece, size_t first,
                                                        size_t stride) {
  bytes &= ~size_t(15);
  const size_t pieces = (bytes + piece - 1) / piece;
  for (size_t i = first; i < pieces; i += stride) {
    const size_t off = i * piece;
    bulk_prefetch_l2(static_cast<const char*>(p) + off, unsigned(bytes - off < piece ? bytes - off : piece));
  }
}

}  // namespace ling::kernels
