// Counters one grid's CTAs raise and another kernel's CTAs wait on, for work that can start before a whole grid is
// done (the Lightning decode kernel on the GEMV rows of its head): one thread of the raising CTA adds after a
// barrier (release: what the CTA wrote before it is visible to whoever acquires the count), one thread of the
// waiting CTA spins with acquire loads, then a barrier. Device code.
#pragma once
#include <cstdint>

namespace ling::kernels {

// *c += 1 at GPU scope with release semantics (call after a CTA barrier: covers the CTA's earlier writes).
__device__ __forceinline__ void flag_add_release(unsigned* c) {
  asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(c) : "memory");
}
// Spins until *c >= target (acquire: the writes released with the counts are visible to this thread; follow with a
// CTA barrier for the others).
__device__ __forceinline__ void flag_wait_acquire(const unsigned* c, unsigned target) {
  unsigned v;
  for (;;) {
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(c) : "memory");
    if (v >= target) return;
    __nanosleep(64);
  }
}

}  // namespace ling::kernels
