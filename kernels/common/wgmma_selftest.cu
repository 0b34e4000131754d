// wgmma_selftest (include/ling/kernels/wgmma_selftest.h): one warpgroup runs the two wgmma forms of
// common/wgmma.cuh on operands staged in the no-swizzle layout, as the Hopper kernels stage them.
#include <cuda_bf16.h>

#include "common/check.h"
#include "common/wgmma.cuh"
#include "ling/kernels/wgmma_selftest.h"

namespace ling::kernels {
namespace {

constexpr int kK = 32, kN = 128;

// Byte offset of (row r, 8-element chunk ch) in a no-swizzle tile whose rows hold `chunks` chunks: core matrices
// along the chunk direction 128 bytes apart, 8-row groups chunks·128 bytes apart.
__device__ __forceinline__ int tile_off(int r, int ch, int chunks) { return (r >> 3) * chunks * 128 + ch * 128 + (r & 7) * 16; }

__global__ void __launch_bounds__(128) k_wgmma_selftest(const uint16_t* a, const uint16_t* b, const uint16_t* bt,
                                                        float* d_ss, float* d_rs) {
  __shared__ __align__(128) unsigned char sa[64 * kK * 2], sb[64 * kK * 2], sbt[kK * kN * 2];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  for (int i = tid; i < 64 * (kK / 8); i += 128) {
    const int r = i / (kK / 8), ch = i % (kK / 8);
    *reinterpret_cast<uint4*>(sa + tile_off(r, ch, kK / 8)) = *reinterpret_cast<const uint4*>(a + r * kK + ch * 8);
    *reinterpret_cast<uint4*>(sb + tile_off(r, ch, kK / 8)) = *reinterpret_cast<const uint4*>(b + r * kK + ch * 8);
  }
  for (int i = tid; i < kK * (kN / 8); i += 128) {
    const int r = i / (kN / 8), ch = i % (kN / 8);
    *reinterpret_cast<uint4*>(sbt + tile_off(r, ch, kN / 8)) = *reinterpret_cast<const uint4*>(bt + r * kN + ch * 8);
  }
  fence_proxy_async_smem();
  __syncthreads();
  // SS: A·Bᵀ over two k-steps of 16 (two chunks = 256 bytes each)
  float dss[32] = {};
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks)
    wgmma_m64n64k16_ss(dss, smem_desc(sa + ks * 256, 128, kK / 8 * 128), smem_desc(sb + ks * 256, 128, kK / 8 * 128),
                       ks > 0);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(dss);
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e)
      d_ss[(16 * warp + g + 8 * (e >> 1)) * 64 + 8 * j + 2 * t + (e & 1)] = dss[4 * j + e];
  // RS: A (rows 16·warp..) as mma.sync A fragments from global memory, Bt MN-major
  const uint16_t* ar = a + (16 * warp + g) * kK;
  auto pair = [](const uint16_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 16); };
  float drs[64] = {};
  const uint32_t kdir = (kN / 8) * 128, ndir = 128;  // Bt's 8-row (k) groups, its 8-column (n) chunks
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
    const uint32_t fr[4] = {pair(ar + 16 * ks + 2 * t), pair(ar + 8 * kK + 16 * ks + 2 * t),
                            pair(ar + 16 * ks + 8 + 2 * t), pair(ar + 8 * kK + 16 * ks + 8 + 2 * t)};
    wgmma_m64n128k16_rs_tb(drs, fr, smem_desc(sbt + 2 * ks * kdir, kdir, ndir), ks > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(drs);
  for (int j = 0; j < 16; ++j)
    for (int e = 0; e < 4; ++e) d_rs[(16 * warp + g + 8 * (e >> 1)) * kN + 8 * j + 2 * t + (e & 1)] = drs[4 * j + e];
}

}  // namespace

void wgmma_selftest(const uint16_t* a, const uint16_t* b, const uint16_t* bt, float* d_ss, float* d_rs,
                    cudaStream_t stream) {
  k_wgmma_selftest<<<1, 128, 0, stream>>>(a, b, bt, d_ss, d_rs);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
