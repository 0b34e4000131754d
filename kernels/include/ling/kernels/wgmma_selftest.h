// Self-check of the wgmma helpers (kernels/common/wgmma.cuh) on one warpgroup, for tests/kernels/test_wgmma.cpp:
// the shared-memory descriptor layouts the Hopper kernels rely on, against host products.
//   d_ss[64×64] = A·Bᵀ            A [64×32], B [64×32] bf16 row-major, both K-major in shared memory (SS form)
//   d_rs[64×128] = A·Bt           Bt [32×128] bf16 row-major (MN-major in shared memory: lbo = the stride between
//                                  8-row K groups, sbo = between 16-byte N chunks), A from registers (RS form)
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels {

void wgmma_selftest(const uint16_t* a, const uint16_t* b, const uint16_t* bt, float* d_ss, float* d_rs,
                    cudaStream_t stream);

}  // namespace ling::kernels
