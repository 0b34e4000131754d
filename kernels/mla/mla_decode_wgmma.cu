// Absorbed MLA decode, split-KV pass 1 on Hopper warpgroup MMAs (wgmma), for more than 16 heads
// (include/ling/kernels/mla_decode.h; pass 2 is the combine kernel of mla_decode.cu, same workspace layout).
// One CTA (2 warpgroups, 256 threads) per (64 heads, split, sequence); each tile is one cache page of 64 tokens,
// staged with cp.async in 128-byte-swizzled slabs (mla_wgmma_tiles.cuh; the next page streams in during this one).
// Exact softmax weights (mla_split_wgmma_kernel): per page each warpgroup computes the scores S[64 heads × 64
// tokens] = Q·Cᵀ over the 576 dims (36 wgmma k-steps, Q and C from shared memory; both warpgroups compute the same
// S, so no exchange is needed), keeps the online softmax of its rows in registers (a row lives in one quad of one
// warp), and accumulates U[64 × 256 of its latent columns] += P·C with P from registers as bf16 hi + lo and C
// transposed from shared memory. bf16 softmax weights (mla_split_wgmma_tok_kernel): the warpgroups split the
// page's tokens for the scores and share P through shared memory. Scores are exact bf16 products accumulated in
// fp32, as the mma.sync path.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "common/wgmma.cuh"
#include "ling/kernels/mla_decode.h"
#include "mla/mla_decode_impl.h"
#include "mla/mla_wgmma_tiles.cuh"

namespace ling::kernels {
namespace {

// Softmax weights as bf16 hi + lo (fp32-accurate): both warpgroups compute the page's scores.
__global__ void __launch_bounds__(kThreads, 1) mla_split_wgmma_kernel(const MlaSplitArgs a) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* sq = smem;
  unsigned char* sc_buf[2] = {smem + kTileBytes, smem + 2 * kTileBytes};
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x, wg = tid >> 7, warp4 = (tid >> 5) & 3, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
  const auto [b, split, h0, t_begin, t_end, nh_here] = mla_cta_work(a, 64);

  load_q_and_first_page(sq, sc_buf[0], p, b, h0, nh_here, t_begin, t_end);

  float acc[2][64];  // U rows (16·warp4 + gi, + 8), columns 256·wg + 128·hh + 8j + 2ti + {0, 1}
  zero_acc(acc);
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const uint64_t dq = smem_desc(sq, 128, kGroup);
  int buf = 0;
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kPage, buf ^= 1) {
    const int n = int(std::min<int64_t>(kPage, t_end - t0));
    next_page(sc_buf[buf ^ 1], p, b, t0, t_end);
    const unsigned char* c = sc_buf[buf];
    // S = Q·Cᵀ (64 × 64), 36 k-steps of 16 dims
    float s[32];
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kRow / 16; ++ks) wgmma_m64n64k16_ss(s, dq + ks * (256 >> 4), page_k_desc(c, 0, ks), ks > 0);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(s);
    // online softmax of rows r0 = 16·warp4 + gi (e < 2) and r0 + 8 (e ≥ 2); token 8j + 2ti + (e & 1)
    float mx[2];
    scale_mask_rowmax(s, 2 * ti, n, p.scale, mx);
    float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const float m_new = fmaxf(m_run[hf], mx[hf]);  // finite: a page holds ≥ 1 valid token
      alpha[hf] = expf(m_run[hf] - m_new);          // 0 on the first page
      m_run[hf] = m_new;
    }
    uint32_t phi[4][4], plo[4][4];  // A fragments of P for the 4 k-steps of 16 tokens
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float e0 = expf(s[4 * j + 2 * hf] - m_run[hf]), e1 = expf(s[4 * j + 2 * hf + 1] - m_run[hf]);
        sum[hf] += e0 + e1;
        // k-step j / 2: registers {row r0 lo-k, row r0+8 lo-k, row r0 hi-k, row r0+8 hi-k}
        const int reg = (j & 1) * 2 + hf;
        split2(e0, e1, phi[j >> 1][reg], plo[j >> 1][reg]);
      }
    rescale(sum, alpha, l_run, acc);
    // U += P·C: C as B (tokens along K, columns along N, MN-major), 4 k-steps of 16 tokens × 2 halves of 128 columns
    fence_regs(acc[0]);
    fence_regs(acc[1]);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const uint64_t db = pc_desc(c, ks, wg, hh);
        wgmma_m64n128k16_rs_tb(acc[hh], phi[ks], db, 1);
        wgmma_m64n128k16_rs_tb(acc[hh], plo[ks], db, 1);
      }
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(acc[0]);
    fence_regs(acc[1]);
    __syncthreads();  // every warpgroup is done with this page before it is refilled
  }
  const float l_mine[2] = {l_run[0], l_run[1]};
  store_partials(a, b, split, h0, nh_here, 16 * warp4 + gi, wg, ti, acc, m_run, l_mine);
}

// bf16 softmax weights, tokens split between the warpgroups (no score computed twice): warpgroup w computes the
// scores of tokens 32w..32w+31 of the page (S_w = Q·C_wᵀ, m64n32), the row maxima are exchanged through shared
// memory so that both use the same running max, each writes its bf16 weights into a shared 64 × 64 P tile (K-major,
// no swizzle), and each accumulates its 256 latent columns of P·C over the whole page from shared memory. Row sums
// stay per warpgroup (same max, so they add at the end).
constexpr size_t kSmemTok = kSmem + kPBytes + 2 * 64 * sizeof(float);

__global__ void __launch_bounds__(kThreads, 1) mla_split_wgmma_tok_kernel(const MlaSplitArgs a) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* sq = smem;
  unsigned char* sc_buf[2] = {smem + kTileBytes, smem + 2 * kTileBytes};
  unsigned char* sp = smem + 3 * kTileBytes;
  float* sx = reinterpret_cast<float*>(sp + kPBytes);  // [2 warpgroups][64 rows]: row maxima, at the end row sums
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x, wg = tid >> 7, warp4 = (tid >> 5) & 3, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
  const int r0 = 16 * warp4 + gi;  // this thread's rows r0 and r0 + 8
  const auto [b, split, h0, t_begin, t_end, nh_here] = mla_cta_work(a, 64);

  load_q_and_first_page(sq, sc_buf[0], p, b, h0, nh_here, t_begin, t_end);

  float acc[2][64];  // U rows (r0, r0 + 8), columns 256·wg + 128·hh + 8j + 2ti + {0, 1}
  zero_acc(acc);
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // l_run: this warpgroup's tokens
  const uint64_t dq = smem_desc(sq, 128, kGroup);
  int buf = 0;
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kPage, buf ^= 1) {
    const int n = int(std::min<int64_t>(kPage, t_end - t0));
    next_page(sc_buf[buf ^ 1], p, b, t0, t_end);
    const unsigned char* c = sc_buf[buf];
    split_page(c, n, dq, p.scale, wg, r0, ti, sx, sp, m_run, l_run, acc);
  }
  float l_both[2];  // row sums: the two warpgroups' parts (same running max)
  split_row_sums(l_run, wg, r0, ti, sx, l_both);
  store_partials(a, b, split, h0, nh_here, r0, wg, ti, acc, m_run, l_both);
}

}  // namespace

void launch_mla_split_wgmma(const MlaSplitArgs& a, bool exact, cudaStream_t stream) {
  const dim3 grid(unsigned((a.p.nh + 63) / 64), unsigned(a.splits), unsigned(a.p.B));
  if (exact) {
    set_max_dynamic_smem(mla_split_wgmma_kernel, int(kSmem));
    mla_split_wgmma_kernel<<<grid, kThreads, kSmem, stream>>>(a);
  } else {
    set_max_dynamic_smem(mla_split_wgmma_tok_kernel, int(kSmemTok));
    mla_split_wgmma_tok_kernel<<<grid, kThreads, kSmemTok, stream>>>(a);
  }
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
