// Internal to kernels/mla: the staging and softmax pieces shared by the Hopper MLA split kernels
// (mla_decode_wgmma.cu, mla_decode_pingpong.cu, mla_decode_tma.cu): Q in the no-swizzle wgmma layout
// (common/wgmma.cuh) and cache pages in 128-byte-swizzled slabs, filled by cp.async, the score masking and row maxima of an m64nN accumulator, the online-softmax rescale and the
// store of a CTA's partial results.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "common/mma.cuh"
#include "common/wgmma.cuh"
#include "mla/mla_decode_impl.h"

namespace ling::kernels {
namespace {

constexpr int kRow = int(kMlaRow), kPage = int(kMlaPage);
constexpr int kChunks = kRow / 8;              // 16-byte chunks per cache row (72)
constexpr int kGroup = kChunks * 128;          // bytes of 8 rows in the no-swizzle layout (9216)
constexpr int kTileBytes = 64 * kRow * 2;      // 64 rows (73,728 bytes)
constexpr int kThreads = 256;
constexpr size_t kSmem = 3 * size_t(kTileBytes);  // Q + two cache pages

// The Q tile (64 query rows) in the no-swizzle layout: (row r, 16-byte chunk ch) at (r >> 3)·kGroup + ch·128 +
// (r & 7)·16 — K-direction core matrices 128 bytes apart, 8-row groups kGroup apart, read K-major by the scores.
// Copy i = ((r >> 3)·kChunks + ch)·8 + (r & 7) lands at byte 16·i (a warp fills 512 contiguous bytes).
__device__ __forceinline__ int tile_row(int i) { return (i / (8 * kChunks)) * 8 + (i & 7); }
__device__ __forceinline__ int tile_chunk(int i) { return (i >> 3) % kChunks; }

// A cache page (64 rows) as 9 slabs of 64 dims, each 64 rows × 128 bytes, 128-byte swizzled: 16-byte chunk ch of
// row r at (ch / 8)·kSlabBytes + r·128 + ((ch % 8) ^ (r % 8))·16 — what a 64 × 64 TMA box with SWIZZLE_128B writes
// and what wgmma reads with the 128-byte-swizzle descriptors below (page buffers 1024-byte aligned). Copy i of a
// page: each warp takes 4 rows × 128 contiguous bytes of one slab, so its global reads are whole lines and its
// shared-memory writes hit every bank once (a loads-only probe: ~106% of the copy rate at 64 heads, against ~66%
// for the no-swizzle tile, whose rows a warp reads 64 bytes at a time).
constexpr int kSlabBytes = 64 * 128;
__device__ __forceinline__ int page_off(int r, int ch) {
  return (ch >> 3) * kSlabBytes + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
}
__device__ __forceinline__ int page_copy_row(int i) { return ((i >> 5) / 9) * 4 + ((i & 31) >> 3); }
__device__ __forceinline__ int page_copy_chunk(int i) { return ((i >> 5) % 9) * 8 + (i & 7); }
constexpr uint64_t kDescSwizzle128 = uint64_t(1) << 62;
// Scores: the page's rows tok0.. as the K-major B operand (dims along K), k-step ks of 16 dims: 8-row groups 1024
// bytes apart (SBO); the k-step's 32 bytes within the slab's 128-byte rows are addressed before the swizzle.
__device__ __forceinline__ uint64_t page_k_desc(const unsigned char* c, int tok0, int ks) {
  return smem_desc(c + (ks >> 2) * kSlabBytes + tok0 * 128 + (ks & 3) * 32, 16, 1024) | kDescSwizzle128;
}

// Page rows [t0, t0 + n) of sequence b (zeros from row n on) into a page buffer, as cp.async by `threads` threads
// of which this is thread `tid`.
template <int threads = kThreads>
__device__ __forceinline__ void load_page(unsigned char* dst, const MlaDecodeParams& p, int64_t b, int64_t t0, int n,
                                          int tid = threadIdx.x) {
  const uint16_t* page = mla_page_rows(p, b, t0 / kPage);
  for (int i = tid; i < 64 * kChunks; i += threads) {
    const int r = page_copy_row(i), ch = page_copy_chunk(i);
    cp_async16(dst + page_off(r, ch), r < n ? page + r * kRow + ch * 8 : page, r < n);
  }
}

// The CTA's 64 query rows (zero past nh) into the Q tile, as cp.async (not committed).
__device__ __forceinline__ void load_q(unsigned char* sq, const MlaDecodeParams& p, int64_t b, int64_t h0,
                                       int nh_here) {
  for (int i = threadIdx.x; i < 64 * kChunks; i += kThreads) {
    const int r = tile_row(i);
    cp_async16(sq + 16 * i, r < nh_here ? p.q_bf16 + (b * p.nh + h0 + r) * kRow + tile_chunk(i) * 8 : p.q_bf16,
               r < nh_here);
  }
}

// The CTA's 64 query rows and its first page, one cp.async group.
__device__ __forceinline__ void load_q_and_first_page(unsigned char* sq, unsigned char* dst, const MlaDecodeParams& p,
                                                      int64_t b, int64_t h0, int nh_here, int64_t t_begin,
                                                      int64_t t_end) {
  load_q(sq, p, b, h0, nh_here);
  if (t_begin < t_end) load_page(dst, p, b, t_begin, int(std::min<int64_t>(kPage, t_end - t_begin)));
  cp_async_commit();
}

// Top of the page loop at token t0: the page after it starts streaming into `next` (if there is one), then the
// CTA waits until page t0 has landed and is visible to the tensor cores.
__device__ __forceinline__ void next_page(unsigned char* next, const MlaDecodeParams& p, int64_t b, int64_t t0,
                                          int64_t t_end) {
  if (t0 + kPage < t_end) {
    load_page(next, p, b, t0 + kPage, int(std::min<int64_t>(kPage, t_end - t0 - kPage)));
    cp_async_commit();
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
  } else {
    cp_async_wait_all();
  }
  fence_proxy_async_smem();
  __syncthreads();
}

// Scores of this thread's rows r0 (e < 2) and r0 + 8 (e ≥ 2), token tok0 + 8j + (e & 1) at s[4j + e]: scaled,
// −∞ past the page's n valid tokens; mx = each row's maximum over the quad (the row's four lanes).
template <int S>
__device__ __forceinline__ void scale_mask_rowmax(float (&s)[S], int tok0, int n, float scale, float (&mx)[2]) {
  mx[0] = mx[1] = -INFINITY;
#pragma unroll
  for (int j = 0; j < S / 4; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int tok = tok0 + 8 * j + (e & 1);
      s[4 * j + e] = tok < n ? s[4 * j + e] * scale : -INFINITY;
      mx[e >> 1] = fmaxf(mx[e >> 1], s[4 * j + e]);
    }
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 1));
    mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 2));
  }
}

// Online-softmax bookkeeping after a page: the quad's row sums into l (scaled by alpha first), U rescaled by alpha.
__device__ __forceinline__ void rescale(float (&sum)[2], const float (&alpha)[2], float (&l)[2], float (&acc)[2][64]) {
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    sum[hf] += __shfl_xor_sync(0xffffffffu, sum[hf], 1);
    sum[hf] += __shfl_xor_sync(0xffffffffu, sum[hf], 2);
    l[hf] = l[hf] * alpha[hf] + sum[hf];
  }
#pragma unroll
  for (int hh = 0; hh < 2; ++hh)
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[hh][i] *= alpha[(i >> 1) & 1];
}

// The split's partial results of rows r0 and r0 + 8 (those < nh_here): U columns 256·wg + 128·hh + 8j + 2ti + {0, 1}
// and, from warpgroup 0's first lane of the quad, the row's (m, l).
__device__ __forceinline__ void store_partials(const MlaSplitArgs& a, int64_t b, int64_t split, int64_t h0, int nh_here,
                                               int r0, int wg, int ti, const float (&acc)[2][64],
                                               const float (&m)[2], const float (&l)[2]) {
  const int64_t base = (b * a.splits + split) * a.p.nh + h0;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = r0 + 8 * hf;
    if (row >= nh_here) continue;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)
#pragma unroll
      for (int j = 0; j < 16; ++j)
        *reinterpret_cast<float2*>(a.ws_u + (base + row) * kMlaLatent + 256 * wg + 128 * hh + 8 * j + 2 * ti) =
            make_float2(acc[hh][4 * j + 2 * hf], acc[hh][4 * j + 2 * hf + 1]);
    if (wg == 0 && ti == 0) {
      a.ws_ml[(base + row) * 2] = m[hf];
      a.ws_ml[(base + row) * 2 + 1] = l[hf];
    }
  }
}

// A 64 × 64 bf16 P tile (64 heads × the 64 tokens of a page), K-major in the no-swizzle layout.
constexpr int kPBytes = 64 * 64 * 2;

// (head r, chunk ch of 8 tokens) of the P tile: K-direction core matrices 128 bytes apart, 8-head groups 1024 apart.
__device__ __forceinline__ int p_off(int r, int ch) { return (r >> 3) * 1024 + ch * 128 + (r & 7) * 16; }

// Token-split page step (each warpgroup scored 32 of the page's tokens into s): scale and mask, the row maxima
// exchanged through sx ([2][64]) so that both warpgroups share one running max, the accumulators rescaled, and
// this warpgroup's e^{s − m} written to its half of the P tile as bf16; ends with the P tile complete (barrier).
__device__ __forceinline__ void split_softmax_to_p(float (&s)[16], int n, float scale, int wg, int r0, int ti,
                                                   float* sx, unsigned char* sp, float (&m_run)[2], float (&l_run)[2],
                                                   float (&acc)[2][64]) {
  // rows r0 (e < 2) and r0 + 8 (e ≥ 2); token 32·wg + 8j + 2ti + (e & 1)
  float mx[2];
  scale_mask_rowmax(s, 32 * wg + 2 * ti, n, scale, mx);
#pragma unroll
  for (int hf = 0; hf < 2; ++hf)
    if (ti == 0) sx[wg * 64 + r0 + 8 * hf] = mx[hf];
  __syncthreads();
  float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    // finite: token 0 of the page is valid and belongs to warpgroup 0
    const float m_new = fmaxf(m_run[hf], fmaxf(mx[hf], sx[(wg ^ 1) * 64 + r0 + 8 * hf]));
    alpha[hf] = expf(m_run[hf] - m_new);  // 0 on the first page
    m_run[hf] = m_new;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const float e0 = expf(s[4 * j + 2 * hf] - m_run[hf]), e1 = expf(s[4 * j + 2 * hf + 1] - m_run[hf]);
      sum[hf] += e0 + e1;
      *reinterpret_cast<uint32_t*>(sp + p_off(r0 + 8 * hf, 4 * wg + j) + 4 * ti) =
          pack_bf16(__float2bfloat16_rn(e0), __float2bfloat16_rn(e1));
    }
  rescale(sum, alpha, l_run, acc);
  fence_proxy_async_smem();
  __syncthreads();  // the whole P tile written
}
// After the token-split page loop: each row's sum over both warpgroups' tokens (same running max), through sx.
__device__ __forceinline__ void split_row_sums(const float (&l_run)[2], int wg, int r0, int ti, float* sx,
                                               float (&l_both)[2]) {
#pragma unroll
  for (int hf = 0; hf < 2; ++hf)
    if (ti == 0) sx[wg * 64 + r0 + 8 * hf] = l_run[hf];
  __syncthreads();
  l_both[0] = l_run[0] + sx[64 + r0];
  l_both[1] = l_run[1] + sx[64 + r0 + 8];
}

// Column half `wg` of the page's P·C: U[:, 256·wg + 128·hh ..] += P·C[:, ...] with C as the MN-major B operand
// (tokens along K, k-step ks of 16 tokens; 64-column slabs kSlabBytes apart (LBO), 8-token groups 1024 apart (SBO)).
__device__ __forceinline__ uint64_t pc_desc(const unsigned char* c, int ks, int wg, int hh) {
  return smem_desc(c + (4 * wg + 2 * hh) * kSlabBytes + ks * 16 * 128, kSlabBytes, 1024) | kDescSwizzle128;
}
// P from registers (this warpgroup's page); issued and committed, not waited for.
__device__ __forceinline__ void pc_issue_rs(float (&acc)[2][64], uint32_t (&ph)[4][4], const unsigned char* c, int wg) {
  fence_regs(acc[0]);
  fence_regs(acc[1]);
  fence_regs(ph);
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) wgmma_m64n128k16_rs_tb(acc[hh], ph[ks], pc_desc(c, ks, wg, hh), 1);
  wgmma_commit();
}
// P from a shared tile (the other warpgroup's page); issued and committed, not waited for.
__device__ __forceinline__ void pc_issue_ss(float (&acc)[2][64], const unsigned char* sp, const unsigned char* c, int wg) {
  const uint64_t dp = smem_desc(sp, 128, 1024);
  fence_regs(acc[0]);
  fence_regs(acc[1]);
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) wgmma_m64n128k16_ss_tb(acc[hh], dp + ks * (256 >> 4), pc_desc(c, ks, wg, hh), 1);
  wgmma_commit();
}
__device__ __forceinline__ void pc_wait(float (&acc)[2][64]) {
  wgmma_wait<0>();
  fence_regs(acc[0]);
  fence_regs(acc[1]);
}

// U accumulators of a CTA's two warpgroups, zeroed.
__device__ __forceinline__ void zero_acc(float (&acc)[2][64]) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh)
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[hh][i] = 0.0f;
}

// One landed page c (n valid tokens) of the token-split kernels (cp.async and TMA): this warpgroup's scores
// S_w = Q·C_wᵀ (64 heads × its 32 tokens, 36 k-steps of 16 dims), the shared softmax into the P tile, U += P·C
// over the page's 64 tokens; ends with the barrier after which the page, P tile and maxima may be reused.
__device__ __forceinline__ void split_page(const unsigned char* c, int n, uint64_t dq, float scale, int wg, int r0,
                                           int ti, float* sx, unsigned char* sp, float (&m_run)[2],
                                           float (&l_run)[2], float (&acc)[2][64]) {
  float s[16];
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kRow / 16; ++ks) wgmma_m64n32k16_ss(s, dq + ks * (256 >> 4), page_k_desc(c, 32 * wg, ks), ks > 0);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(s);
  split_softmax_to_p(s, n, scale, wg, r0, ti, sx, sp, m_run, l_run, acc);
  pc_issue_ss(acc, sp, c, wg);
  pc_wait(acc);
  __syncthreads();
}

}  // namespace
}  // namespace ling::kernels
