// Absorbed MLA decode, split-KV pass 1 on Hopper warpgroup MMAs with bf16 softmax weights, ping-pong schedule
// (MlaDecodeParams::pingpong; same workspace and combine pass as mla_decode_wgmma.cu). One CTA (2 warpgroups) per
// (64 heads, split, sequence):
//   - warpgroup w owns the CTA's pages k ≡ w (mod 2): it streams them into its page buffer (cp.async by its own
//     128 threads, the next one as soon as both warpgroups are done with the buffer) and computes their scores
//     S = Q·Cᵀ (64 heads × 64 tokens; the 512 latent dims of Q from shared memory, its 64 RoPE dims from registers);
//   - the latent columns are split: warpgroup w accumulates U[:, 256w .. 256w + 255] over every page, its own
//     page's P from registers and the other warpgroup's P from shared memory;
//   - the running maximum passes from page to page through shared memory (warpgroup 0's page 2i, then warpgroup
//     1's page 2i + 1), so both pages of a pair enter U at one scale; warpgroup 0 hands its P over already scaled
//     to the pair's maximum.
// Each page's scores are computed once and Q is read from shared memory once per page; while one warpgroup runs
// its softmax the other's MMAs keep the tensor cores busy. Named barriers order the hand-overs (ids below).
// Shared memory: latent Q 64 KB | warpgroup 1's P 8 KB | two pages 144 KB | warpgroup 0's P 8 KB | row state 1 KB.
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

constexpr int kQGroup = 64 * 128;                  // latent Q: 64 chunks a row, 8-row groups 8,192 bytes apart
constexpr int kQBytes = 64 * int(kMlaLatent) * 2;  // 65,536
constexpr int kOffP1 = kQBytes, kOffBuf = kOffP1 + kPBytes, kOffP0 = kOffBuf + 2 * kTileBytes;
constexpr int kOffRows = kOffP0 + kPBytes;                          // sM, sScale0, sScale1, sL: 64 floats each
constexpr size_t kSmemPingPong = size_t(kOffRows) + 4 * 64 * sizeof(float);  // 230,400 bytes

// Named barriers (producer arrives, consumer syncs; 256 = both warpgroups, 128 = one).
enum PingPongBarrier : int {
  kAReady = 1,  // warpgroup 0 → 1: sM = m_A (max after page 2i), sScale0 = e^{m_prev − m_A}
  kBReady,      // 1 → 0: sM = m_B (max after page 2i + 1), sScale1 = e^{m_A − m_B}
  kP0Ready,     // 0 → 1: P of page 2i (scaled to m_B) in sP0
  kP1Ready,     // 1 → 0: P of page 2i + 1 in sP1
  kBuf0Free,    // 1 → 0: warpgroup 1 no longer reads page buffer 0 or sP0
  kBuf1Free,    // 0 → 1: warpgroup 0 no longer reads page buffer 1 or sP1
  kWg0Local,    // warpgroup 0's own page landed (each thread's cp.async done)
  kWg1Local,
};

// S = Q·Cᵀ for one page: 32 k-steps of latent dims (Q and C from shared memory), 4 of RoPE dims (Q from registers).
__device__ __forceinline__ void page_scores(float (&s)[32], const unsigned char* sq, const unsigned char* c,
                                            const uint32_t (&rq)[4][4]) {
  const uint64_t dq = smem_desc(sq, 128, kQGroup);
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < int(kMlaLatent) / 16; ++ks)
    wgmma_m64n64k16_ss(s, dq + ks * (256 >> 4), page_k_desc(c, 0, ks), ks > 0);
#pragma unroll
  for (int kr = 0; kr < 4; ++kr) wgmma_m64n64k16_rs(s, rq[kr], page_k_desc(c, 0, 32 + kr), 1);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(s);
}

// e^{s − m} of this thread's two rows in place (fp32, for the row sums), as bf16 A fragments in ph, and with
// `sp` set also into that P tile (times `f`, the scale to the pair's maximum); returns the quad's row sums.
__device__ __forceinline__ void softmax_weights(float (&s)[32], const float (&m)[2], uint32_t (&ph)[4][4],
                                                float (&sum)[2]) {
  sum[0] = sum[1] = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const float e0 = expf(s[4 * j + 2 * hf] - m[hf]), e1 = expf(s[4 * j + 2 * hf + 1] - m[hf]);
      s[4 * j + 2 * hf] = e0, s[4 * j + 2 * hf + 1] = e1;
      sum[hf] += e0 + e1;
      // k-step j / 2: registers {row r0 lo-k, row r0+8 lo-k, row r0 hi-k, row r0+8 hi-k}
      ph[j >> 1][(j & 1) * 2 + hf] = pack_bf16(__float2bfloat16_rn(e0), __float2bfloat16_rn(e1));
    }
}
// The weights s (fp32, rows r0 and r0 + 8) times f into the P tile sp (bf16), visible to the tensor cores.
__device__ __forceinline__ void store_p(unsigned char* sp, const float (&s)[32], const float (&f)[2], int r0, int ti) {
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
      *reinterpret_cast<uint32_t*>(sp + p_off(r0 + 8 * hf, j) + 4 * ti) =
          pack_bf16(__float2bfloat16_rn(s[4 * j + 2 * hf] * f[hf]), __float2bfloat16_rn(s[4 * j + 2 * hf + 1] * f[hf]));
  fence_proxy_async_smem();
}

__global__ void __launch_bounds__(kThreads, 1) mla_split_pingpong_kernel(const MlaSplitArgs a) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* sq = smem;
  unsigned char* sp1 = smem + kOffP1;
  unsigned char* sp0 = smem + kOffP0;
  unsigned char* const buf[2] = {smem + kOffBuf, smem + kOffBuf + kTileBytes};
  float* sM = reinterpret_cast<float*>(smem + kOffRows);
  float* sScale0 = sM + 64;
  float* sScale1 = sM + 128;
  float* sL = sM + 192;
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x, wg = tid >> 7, tw = tid & 127, warp4 = tw >> 5, lane = tid & 31, gi = lane >> 2,
            ti = lane & 3;
  const int r0 = 16 * warp4 + gi;  // this thread's rows r0 and r0 + 8
  const MlaCtaWork w = mla_cta_work(a, 64);
  const int64_t b = w.b, split = w.split, h0 = w.h0, t_begin = w.t_begin, t_end = w.t_end;
  const int nh_here = w.nh_here;
  const int np = t_end > t_begin ? int((t_end - t_begin + kPage - 1) / kPage) : 0;
  auto page_t0 = [&](int k) { return t_begin + int64_t(k) * kPage; };
  auto page_n = [&](int k) { return int(std::min<int64_t>(kPage, t_end - page_t0(k))); };

  // Latent Q → shared memory (linear fill: copy i lands at byte 16·i), the RoPE dims → registers as A fragments;
  // each warpgroup's first page.
  for (int i = tid; i < 64 * 64; i += kThreads) {
    const int r = (i >> 9) * 8 + (i & 7), ch = (i >> 3) & 63;
    cp_async16(sq + 16 * i, r < nh_here ? p.q_bf16 + (b * p.nh + h0 + r) * kRow + ch * 8 : p.q_bf16, r < nh_here);
  }
  if (wg < np) load_page<128>(buf[wg], p, b, page_t0(wg), page_n(wg), tw);
  cp_async_commit();
  uint32_t rq[4][4];
  auto qword = [&](int r, int col) {
    return r < nh_here ? *reinterpret_cast<const uint32_t*>(p.q_bf16 + (b * p.nh + h0 + r) * kRow + kMlaLatent + col)
                       : 0u;
  };
#pragma unroll
  for (int kr = 0; kr < 4; ++kr) {
    rq[kr][0] = qword(r0, 16 * kr + 2 * ti), rq[kr][1] = qword(r0 + 8, 16 * kr + 2 * ti);
    rq[kr][2] = qword(r0, 16 * kr + 8 + 2 * ti), rq[kr][3] = qword(r0 + 8, 16 * kr + 8 + 2 * ti);
  }
  cp_async_wait_all();
  fence_proxy_async_smem();
  __syncthreads();

  float acc[2][64];  // U rows (r0, r0 + 8), columns 256·wg + 128·hh + 8j + 2ti + {0, 1}
  zero_acc(acc);
  float l_run[2] = {0.0f, 0.0f};  // this warpgroup's pages, at the current maximum
  float s[32];
  uint32_t ph[4][4] = {};
  for (int i = 0, pairs = (np + 1) / 2; i < pairs; ++i) {
    const int kA = 2 * i, kB = 2 * i + 1;
    const bool has_b = kB < np;
    if (wg == 0) {
      if (i > 0) {  // page kA was issued at the end of the last pair
        cp_async_wait_all();
        fence_proxy_async_smem();
        named_barrier_sync(kWg0Local, 128);
      }
      page_scores(s, sq, buf[0], rq);
      float mx[2], m_new[2], sc0[2], sum[2];
      scale_mask_rowmax(s, 2 * ti, page_n(kA), p.scale, mx);
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float m_prev = i == 0 ? -INFINITY : sM[r0 + 8 * hf];
        m_new[hf] = fmaxf(m_prev, mx[hf]);  // finite: a page holds ≥ 1 valid token
        sc0[hf] = expf(m_prev - m_new[hf]);  // 0 on the first page
      }
      __syncwarp();  // the quad's reads of sM before its first lane writes
      if (ti == 0)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) sM[r0 + 8 * hf] = m_new[hf], sScale0[r0 + 8 * hf] = sc0[hf];
      named_barrier_arrive(kAReady, 256);
      softmax_weights(s, m_new, ph, sum);
      rescale(sum, sc0, l_run, acc);
      pc_issue_rs(acc, ph, buf[0], 0);
      named_barrier_sync(kBReady, 256);
      const float sc1[2] = {sScale1[r0], sScale1[r0 + 8]};
      store_p(sp0, s, sc1, r0, ti);
      named_barrier_arrive(kP0Ready, 256);
      pc_wait(acc);
      fence_regs(ph);
#pragma unroll
      for (int hh = 0; hh < 2; ++hh)
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[hh][e] *= sc1[(e >> 1) & 1];
      l_run[0] *= sc1[0], l_run[1] *= sc1[1];
      if (has_b) {
        named_barrier_sync(kP1Ready, 256);
        pc_issue_ss(acc, sp1, buf[1], 0);
        pc_wait(acc);
        named_barrier_arrive(kBuf1Free, 256);
      }
      named_barrier_sync(kBuf0Free, 256);
      if (kA + 2 < np) {
        load_page<128>(buf[0], p, b, page_t0(kA + 2), page_n(kA + 2), tw);
        cp_async_commit();
      }
    } else {
      float mx[2] = {-INFINITY, -INFINITY};
      if (has_b) {
        if (i > 0) {
          cp_async_wait_all();
          fence_proxy_async_smem();
          named_barrier_sync(kWg1Local, 128);
        }
        page_scores(s, sq, buf[1], rq);
        scale_mask_rowmax(s, 2 * ti, page_n(kB), p.scale, mx);
      }
      named_barrier_sync(kAReady, 256);
      float m_new[2], f[2], sum[2] = {0.0f, 0.0f};
      float sc1[2];
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float m_a = sM[r0 + 8 * hf];
        m_new[hf] = fmaxf(m_a, mx[hf]);
        sc1[hf] = has_b ? expf(m_a - m_new[hf]) : 1.0f;
        f[hf] = sScale0[r0 + 8 * hf] * sc1[hf];  // this warpgroup's U and l: previous maximum → m_B
      }
      __syncwarp();
      if (ti == 0)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) sM[r0 + 8 * hf] = m_new[hf], sScale1[r0 + 8 * hf] = sc1[hf];
      named_barrier_arrive(kBReady, 256);
      if (has_b) {
        softmax_weights(s, m_new, ph, sum);
        const float one[2] = {1.0f, 1.0f};
        store_p(sp1, s, one, r0, ti);
        named_barrier_arrive(kP1Ready, 256);
      }
      rescale(sum, f, l_run, acc);
      if (has_b) pc_issue_rs(acc, ph, buf[1], 1);
      named_barrier_sync(kP0Ready, 256);
      pc_issue_ss(acc, sp0, buf[0], 1);
      pc_wait(acc);
      fence_regs(ph);
      named_barrier_arrive(kBuf0Free, 256);
      if (has_b) {
        named_barrier_sync(kBuf1Free, 256);
        if (kB + 2 < np) {
          load_page<128>(buf[1], p, b, page_t0(kB + 2), page_n(kB + 2), tw);
          cp_async_commit();
        }
      }
    }
  }
  // The last pair's maximum (warpgroup 1 wrote it) and the two warpgroups' row sums at it.
  __syncthreads();
  float m_fin[2], l_both[2];  // l_both: warpgroup 0's, which store_partials writes
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    m_fin[hf] = np > 0 ? sM[r0 + 8 * hf] : -INFINITY;
    if (ti == 0 && wg == 1) sL[r0 + 8 * hf] = l_run[hf];
  }
  __syncthreads();
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) l_both[hf] = wg == 0 ? l_run[hf] + sL[r0 + 8 * hf] : l_run[hf];
  store_partials(a, b, split, h0, nh_here, r0, wg, ti, acc, m_fin, l_both);
}

}  // namespace

void launch_mla_split_pingpong(const MlaSplitArgs& a, cudaStream_t stream) {
  const dim3 grid(unsigned((a.p.nh + 63) / 64), unsigned(a.splits), unsigned(a.p.B));
  set_max_dynamic_smem(mla_split_pingpong_kernel, int(kSmemPingPong));
  mla_split_pingpong_kernel<<<grid, kThreads, kSmemPingPong, stream>>>(a);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
