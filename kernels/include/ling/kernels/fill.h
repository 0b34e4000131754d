// Seeded uniform random fills on the device (benchmarks must never time zeros, performance.md §6):
// element i = lo + (hi − lo) · u(hash(seed, i)), u in [0, 1). Deterministic for a seed; no state kept.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels {

void launch_fill_uniform_f32(float* x, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t stream);
void launch_fill_uniform_bf16(uint16_t* x, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t stream);

}  // namespace ling::kernels
