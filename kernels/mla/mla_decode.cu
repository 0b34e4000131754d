// Absorbed MLA decode over a paged bf16 latent cache, split-KV (include/ling/kernels/mla_decode.h).
// Pass 1: one CTA per (head group of 16, split, sequence) walks its pages in tiles of 32 tokens: tile → shared
// memory (cp.async, zero rows past the end), scores s = (q · row) · scale in fp32 for 16 heads × 32 tokens,
// online softmax (running max m, sum l), u += p · c with 16 heads × 512 latent columns in registers (2 columns per
// thread). Partial (m, l, u) go to the workspace. Pass 2 merges the splits: u = Σ_s e^{m_s − M} u_s / Σ_s e^{m_s − M} l_s.
// Arithmetic is fp32 on CUDA cores (exact products of the bf16 cache); at 64 heads this is compute-bound.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "common/mma.cuh"
#include "ling/kernels/mla_decode.h"
#include "mla/mla_decode_impl.h"

namespace ling::kernels {
namespace {

constexpr int kRow = int(kMlaRow), kLat = int(kMlaLatent), kPage = int(kMlaPage);
constexpr int kHeads = 16;     // heads per CTA
constexpr int kTile = 32;      // tokens per shared-memory tile
constexpr int kPitch = kRow + 8;  // bf16 row pitch of the tile
constexpr int kThreads = 256;

struct Smem {
  float q[kHeads][kRow];                // this group's queries
  __nv_bfloat16 c[kTile][kPitch];       // cache rows of the tile
  float p[kHeads][kTile];               // softmax numerators of the tile
  float alpha[kHeads];                  // rescale of the running accumulators
};

using Args = MlaSplitArgs;

__global__ void __launch_bounds__(kThreads, 2) mla_split_kernel(const Args a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x;
  const auto [b, split, h0, t_begin, t_end, nh_here] = mla_cta_work(a, kHeads);

  for (int i = tid; i < kHeads * kRow; i += kThreads) {
    const int h = i / kRow, k = i % kRow;
    s.q[h][k] = h < nh_here ? p.q[(b * p.nh + h0 + h) * kRow + k] : 0.0f;
  }
  // score thread: head sh, tokens st and st + 16; softmax state lives in lane group of 16 (one head)
  const int sh = tid >> 4, st = tid & 15;
  float m_run = -INFINITY, l_run = 0.0f;
  float acc[kHeads][2] = {};  // u[h][2 tid .. 2 tid + 1]

  for (int64_t t0 = t_begin; t0 < t_end; t0 += kTile) {
    const int n = int(std::min<int64_t>(kTile, t_end - t0));
    __syncthreads();  // previous tile consumed
    for (int i = tid; i < kTile * (kRow / 8); i += kThreads) {
      const int r = i / (kRow / 8), c = (i % (kRow / 8)) * 8;
      const int64_t t = t0 + r;
      // rows past the end: 16 zero bytes (the source, the tile's first page, is not read)
      const uint16_t* src = mla_page_rows(p, b, (r < n ? t : t0) / kPage) + (r < n ? (t % kPage) * kRow + c : 0);
      cp_async16(&s.c[r][c], src, r < n);
    }
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    // scores of head sh for tokens st, st + 16
    float sc[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int t = st + 16 * j;
      float d = 0.0f;
#pragma unroll 8
      for (int k = 0; k < kRow; k += 4) {
        const float4 qv = *reinterpret_cast<const float4*>(&s.q[sh][k]);
        const uint2 cv = *reinterpret_cast<const uint2*>(&s.c[t][k]);
        const __nv_bfloat162 c01 = *reinterpret_cast<const __nv_bfloat162*>(&cv.x);
        const __nv_bfloat162 c23 = *reinterpret_cast<const __nv_bfloat162*>(&cv.y);
        d = fmaf(qv.x, __low2float(c01), d);
        d = fmaf(qv.y, __high2float(c01), d);
        d = fmaf(qv.z, __low2float(c23), d);
        d = fmaf(qv.w, __high2float(c23), d);
      }
      sc[j] = t < n ? d * p.scale : -INFINITY;
    }
    float mx = fmaxf(sc[0], sc[1]);
#pragma unroll
    for (int off = 8; off >= 1; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float m_new = fmaxf(m_run, mx);  // finite: every tile has ≥ 1 valid token
    const float e0 = expf(sc[0] - m_new), e1 = expf(sc[1] - m_new);
    float sum = e0 + e1;
#pragma unroll
    for (int off = 8; off >= 1; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    const float alpha = expf(m_run - m_new);  // 0 on the first tile (m_run = −inf)
    l_run = l_run * alpha + sum;
    m_run = m_new;
    s.p[sh][st] = e0;
    s.p[sh][st + 16] = e1;
    if (st == 0) s.alpha[sh] = alpha;
    __syncthreads();
    // u[h][2 tid..] = alpha_h u + Σ_t p[h][t] c[t][2 tid..]
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      const float al = s.alpha[h];
      acc[h][0] *= al;
      acc[h][1] *= al;
    }
    for (int t = 0; t < n; t += 4) {
      float2 cv[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        cv[j] = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&s.c[t + j][2 * tid]));
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
        const float4 pv = *reinterpret_cast<const float4*>(&s.p[h][t]);  // zero past n (e = exp(−inf))
        acc[h][0] = fmaf(pv.x, cv[0].x, fmaf(pv.y, cv[1].x, fmaf(pv.z, cv[2].x, fmaf(pv.w, cv[3].x, acc[h][0]))));
        acc[h][1] = fmaf(pv.x, cv[0].y, fmaf(pv.y, cv[1].y, fmaf(pv.z, cv[2].y, fmaf(pv.w, cv[3].y, acc[h][1]))));
      }
    }
  }
  const int64_t base = (b * a.splits + split) * p.nh + h0;
#pragma unroll
  for (int h = 0; h < kHeads; ++h)
    if (h < nh_here)
      *reinterpret_cast<float2*>(a.ws_u + (base + h) * kLat + 2 * tid) = make_float2(acc[h][0], acc[h][1]);
  if (st == 0 && sh < nh_here) {
    a.ws_ml[(base + sh) * 2] = m_run;
    a.ws_ml[(base + sh) * 2 + 1] = l_run;
  }
}


// ---- tensor-core path: q bf16, MT m-tiles of 16 heads per CTA (MT = 1 or 4), tiles of 32 tokens, double-buffered.
// Scores q·c are exact bf16 products accumulated in fp32; the softmax weights enter P·C split into bf16 hi + lo
// (two MMAs), so the only rounding beyond fp32 is the caller's bf16 query.
constexpr int kTcTile = 32;
template <int MT>
struct TcSmem {
  __nv_bfloat16 q[MT * 16][kPitch];
  __nv_bfloat16 c[2][kTcTile][kPitch];
  __nv_bfloat16 p_hi[MT * 16][kTcTile + 8], p_lo[MT * 16][kTcTile + 8];  // softmax weights, hi/lo split
  float red_max[8][MT * 16], red_sum[8][MT * 16];
  float m_run[MT * 16], l_run[MT * 16], alpha[MT * 16];
};

__device__ __forceinline__ void load_cache_tile(__nv_bfloat16 (*dst)[kPitch], const MlaDecodeParams& p, int64_t b,
                                                int64_t t0, int n) {
  for (int i = threadIdx.x; i < kTcTile * (kRow / 8); i += kThreads) {
    const int r = i / (kRow / 8), c = (i % (kRow / 8)) * 8;
    const int64_t t = t0 + r;
    const uint16_t* src = mla_page_rows(p, b, (r < n ? t : t0) / kPage) + (r < n ? (t % kPage) * kRow + c : 0);
    cp_async16(&dst[r][c], src, r < n);
  }
}

template <int MT>
__global__ void __launch_bounds__(kThreads, 1) mla_split_tc_kernel(const Args a) {
  constexpr int kRows = MT * 16, kWpm = 8 / MT;              // warps per m-tile
  constexpr int kNtw = kWpm >= 4 ? 1 : 4 / kWpm;             // score n-tiles (8 tokens) per warp
  constexpr int kCols = kLat / kWpm, kNto = kCols / 8;       // P·C output columns / n-tiles per warp
  extern __shared__ __align__(16) unsigned char smem_raw[];
  TcSmem<MT>& s = *reinterpret_cast<TcSmem<MT>*>(smem_raw);
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
  const int mi = lane >> 3, r8 = lane & 7;
  const int mt = warp % MT, wq = warp / MT;                  // m-tile, index among the warps of that m-tile
  const auto [b, split, h0, t_begin, t_end, nh_here] = mla_cta_work(a, kRows);

  for (int i = tid; i < kRows * (kRow / 8); i += kThreads) {
    const int r = i / (kRow / 8), c = (i % (kRow / 8)) * 8;
    cp_async16(&s.q[r][c], r < nh_here ? p.q_bf16 + (b * p.nh + h0 + r) * kRow + c : p.q_bf16, r < nh_here);
  }
  if (tid < kRows) s.m_run[tid] = -INFINITY, s.l_run[tid] = 0.0f;
  if (t_begin < t_end) load_cache_tile(s.c[0], p, b, t_begin, int(std::min<int64_t>(kTcTile, t_end - t_begin)));
  cp_async_commit();
  float acc[kNto][4] = {};
  const bool scorer = wq * kNtw < 4;  // warps with score columns (all when MT = 4)
  int buf = 0;
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kTcTile, buf ^= 1) {
    const int n = int(std::min<int64_t>(kTcTile, t_end - t0));
    if (t0 + kTcTile < t_end) {
      load_cache_tile(s.c[buf ^ 1], p, b, t0 + kTcTile, int(std::min<int64_t>(kTcTile, t_end - t0 - kTcTile)));
      cp_async_commit();
      asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    } else {
      cp_async_wait_all();
    }
    __syncthreads();
    const __nv_bfloat16 (*c)[kPitch] = s.c[buf];
    // scores: rows 16 mt + {gi, gi + 8}, tokens 8 (wq·kNtw + j) + 2 ti + {0, 1}
    float sc[kNtw][4] = {};
    if (scorer) {
#pragma unroll 4
      for (int ks = 0; ks < kRow / 16; ++ks) {
        uint32_t qa[4];
        ldsm_x4(qa, &s.q[16 * mt + (mi & 1) * 8 + r8][16 * ks + (mi >> 1) * 8]);
        if constexpr (kNtw == 2) {
          uint32_t kb[4];
          ldsm_x4(kb, &c[16 * wq + (mi >> 1) * 8 + r8][16 * ks + (mi & 1) * 8]);
          mma_bf16(sc[0], qa, kb[0], kb[1]);
          mma_bf16(sc[1], qa, kb[2], kb[3]);
        } else {
          uint32_t kb[2];
          ldsm_x2(kb, &c[8 * wq + r8][16 * ks + (mi & 1) * 8]);
          mma_bf16(sc[0], qa, kb[0], kb[1]);
        }
      }
    }
    float rmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kNtw; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int tok = 8 * (wq * kNtw + j) + 2 * ti + (e & 1);
        sc[j][e] = scorer && tok < n ? sc[j][e] * p.scale : -INFINITY;
        rmax[e >> 1] = fmaxf(rmax[e >> 1], sc[j][e]);
      }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      rmax[hf] = fmaxf(rmax[hf], __shfl_xor_sync(0xffffffffu, rmax[hf], 1));
      rmax[hf] = fmaxf(rmax[hf], __shfl_xor_sync(0xffffffffu, rmax[hf], 2));
      if (ti == 0) s.red_max[wq][16 * mt + gi + 8 * hf] = rmax[hf];
    }
    __syncthreads();
    if (tid < kRows) {
      float m = s.m_run[tid];
      for (int w = 0; w < kWpm; ++w) m = fmaxf(m, s.red_max[w][tid]);
      s.alpha[tid] = expf(s.m_run[tid] - m);  // 0 on the first tile
      s.m_run[tid] = m;
    }
    __syncthreads();
    float rsum[2] = {0.0f, 0.0f};
    if (scorer) {
#pragma unroll
      for (int j = 0; j < kNtw; ++j)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const int row = 16 * mt + gi + 8 * hf, tok = 8 * (wq * kNtw + j) + 2 * ti;
          const float m = s.m_run[row];
          const float e0 = expf(sc[j][2 * hf] - m), e1 = expf(sc[j][2 * hf + 1] - m);
          rsum[hf] += e0 + e1;
          uint32_t hi, lo;
          split2(e0, e1, hi, lo);
          *reinterpret_cast<uint32_t*>(&s.p_hi[row][tok]) = hi;
          *reinterpret_cast<uint32_t*>(&s.p_lo[row][tok]) = lo;
        }
    }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      rsum[hf] += __shfl_xor_sync(0xffffffffu, rsum[hf], 1);
      rsum[hf] += __shfl_xor_sync(0xffffffffu, rsum[hf], 2);
      if (ti == 0) s.red_sum[wq][16 * mt + gi + 8 * hf] = rsum[hf];
    }
    __syncthreads();
    if (tid < kRows) {
      float l = s.l_run[tid] * s.alpha[tid];
      for (int w = 0; w < kWpm; ++w) l += s.red_sum[w][tid];
      s.l_run[tid] = l;
    }
    // u[rows][cols of this warp] = alpha u + P · C
    const float al0 = s.alpha[16 * mt + gi], al1 = s.alpha[16 * mt + gi + 8];
#pragma unroll
    for (int j = 0; j < kNto; ++j) acc[j][0] *= al0, acc[j][1] *= al0, acc[j][2] *= al1, acc[j][3] *= al1;
#pragma unroll
    for (int ks = 0; ks < kTcTile / 16; ++ks) {
      uint32_t ph[4], pl[4];
      ldsm_x4(ph, &s.p_hi[16 * mt + (mi & 1) * 8 + r8][16 * ks + (mi >> 1) * 8]);
      ldsm_x4(pl, &s.p_lo[16 * mt + (mi & 1) * 8 + r8][16 * ks + (mi >> 1) * 8]);
#pragma unroll
      for (int jp = 0; jp < kNto / 2; ++jp) {
        uint32_t cb[4];
        ldsm_x4_t(cb, &c[16 * ks + (mi & 1) * 8 + r8][kCols * wq + 16 * jp + (mi >> 1) * 8]);
        mma_bf16(acc[2 * jp], ph, cb[0], cb[1]);
        mma_bf16(acc[2 * jp], pl, cb[0], cb[1]);
        mma_bf16(acc[2 * jp + 1], ph, cb[2], cb[3]);
        mma_bf16(acc[2 * jp + 1], pl, cb[2], cb[3]);
      }
    }
    __syncthreads();  // buffer buf and P are reused by the next tile
  }
  const int64_t base = (b * a.splits + split) * p.nh + h0;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = 16 * mt + gi + 8 * hf;
    if (row >= nh_here) continue;
#pragma unroll
    for (int j = 0; j < kNto; ++j)
      *reinterpret_cast<float2*>(a.ws_u + (base + row) * kLat + kCols * wq + 8 * j + 2 * ti) =
          make_float2(acc[j][2 * hf], acc[j][2 * hf + 1]);
  }
  if (tid < nh_here) {
    a.ws_ml[(base + tid) * 2] = s.m_run[tid];
    a.ws_ml[(base + tid) * 2 + 1] = s.l_run[tid];
  }
}

// One CTA per (head, sequence), 128 threads × 4 columns.
__global__ void mla_combine_kernel(const Args a) {
  const MlaDecodeParams& p = a.p;
  const int64_t h = blockIdx.x, b = blockIdx.y;
  float M = -INFINITY;
  for (int sp = 0; sp < a.splits; ++sp) M = fmaxf(M, a.ws_ml[((b * a.splits + sp) * p.nh + h) * 2]);
  float4 u = make_float4(0.f, 0.f, 0.f, 0.f);
  float L = 0.0f;
  if (M > -INFINITY) {
    for (int sp = 0; sp < a.splits; ++sp) {
      const int64_t i = (b * a.splits + sp) * p.nh + h;
      const float m = a.ws_ml[i * 2];
      if (m == -INFINITY) continue;  // empty split
      const float w = expf(m - M);
      L += w * a.ws_ml[i * 2 + 1];
      const float4 x = *reinterpret_cast<const float4*>(a.ws_u + i * kLat + 4 * threadIdx.x);
      u.x += w * x.x, u.y += w * x.y, u.z += w * x.z, u.w += w * x.w;
    }
  }
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  *reinterpret_cast<float4*>(p.u + (b * p.nh + h) * kLat + 4 * threadIdx.x) =
      make_float4(u.x * inv, u.y * inv, u.z * inv, u.w * inv);
}

}  // namespace

int64_t mla_decode_splits(int64_t B, int64_t nh, int64_t max_seq_len, int64_t requested, int num_sms,
                          bool tensor_cores) {
  const int64_t pages = std::max<int64_t>(1, (max_seq_len + kPage - 1) / kPage);
  const int64_t rows = tensor_cores ? (nh > 16 ? 64 : 16) : kHeads;
  const int64_t per_sm = tensor_cores && nh > 16 ? 1 : 2;  // CTAs resident per SM (shared memory)
  const int64_t base = std::max<int64_t>(1, B * ((nh + rows - 1) / rows)), slots = per_sm * int64_t(num_sms);
  int64_t sp = requested;
  if (sp <= 0) {  // 1..4 waves of CTAs: the split count whose last wave is fullest (fewest splits on ties)
    double best = -1.0;
    for (int64_t waves = 1; waves <= 4; ++waves) {
      const int64_t cand = std::clamp<int64_t>((waves * slots) / base, 1, pages);
      const int64_t ctas = base * cand;
      const double fill = double(ctas) / double(((ctas + slots - 1) / slots) * slots);
      if (fill > best + 1e-9) best = fill, sp = cand;
    }
  }
  sp = std::clamp<int64_t>(sp, 1, pages);
  const int64_t per = (pages + sp - 1) / sp;
  return (pages + per - 1) / per;
}

size_t mla_decode_workspace_bytes(int64_t B, int64_t nh, int64_t max_seq_len, int64_t requested, int num_sms,
                                  bool tensor_cores) {
  const int64_t sp = mla_decode_splits(B, nh, max_seq_len, requested, num_sms, tensor_cores);
  return size_t(B * sp * nh) * (kLat + 2) * sizeof(float);
}

void launch_mla_decode(const MlaDecodeParams& p, cudaStream_t stream) {
  LING_CHECK(p.B >= 0 && p.nh >= 1 && p.max_pages >= 1 && p.max_seq_len >= 0,
             "mla decode: B = ", p.B, ", nh = ", p.nh, ", max_pages = ", p.max_pages, " (need B >= 0, nh, pages >= 1)");
  if (p.B == 0) return;
  LING_CHECK((p.q || p.q_bf16) && ((p.cache && p.page_table) || p.seq_cache) && p.seq_len && p.u && p.workspace,
             "mla decode: a null q/cache/page_table (or seq_cache)/seq_len/u/workspace pointer");
  LING_CHECK(p.max_seq_len <= p.max_pages * kPage, "mla decode: max_seq_len ", p.max_seq_len, " exceeds max_pages·64");
  LING_CHECK(reinterpret_cast<uintptr_t>(p.cache) % 16 == 0 && reinterpret_cast<uintptr_t>(p.u) % 16 == 0,
             "mla decode: cache and u must be 16-byte aligned");  // seq_cache rows: 16-byte aligned by the caller
  LING_CHECK(p.B <= 65535, "mla decode: B = ", p.B, " exceeds the grid limit 65535");
  const int sms = device_sm_count();
  const int64_t sp = mla_decode_splits(p.B, p.nh, p.max_seq_len, p.splits, sms, p.q_bf16 != nullptr);
  const int64_t pages = std::max<int64_t>(1, (p.max_seq_len + kPage - 1) / kPage);
  Args a{p, static_cast<float*>(p.workspace), nullptr, int(sp), int((pages + sp - 1) / sp)};
  a.ws_ml = a.ws_u + p.B * sp * p.nh * kLat;
  if (p.q_bf16 && p.nh > 16 && p.wgmma) {  // warpgroup MMAs, 64 heads per CTA
    if (p.bf16_softmax_weights && p.tma && (p.cache || p.seq_maps)) launch_mla_split_tma(a, stream);
    else if (p.bf16_softmax_weights && p.pingpong) launch_mla_split_pingpong(a, stream);
    else launch_mla_split_wgmma(a, !p.bf16_softmax_weights, stream);
  } else if (p.q_bf16) {  // mma.sync: 64 heads per CTA, or 16 when nh ≤ 16
    const bool wide = p.nh > 16;
    const int rows = wide ? 64 : 16;
    const size_t smem = wide ? sizeof(TcSmem<4>) : sizeof(TcSmem<1>);
    auto kernel = wide ? mla_split_tc_kernel<4> : mla_split_tc_kernel<1>;
    set_max_dynamic_smem(kernel, int(smem));
    const dim3 grid(unsigned((p.nh + rows - 1) / rows), unsigned(sp), unsigned(p.B));
    kernel<<<grid, kThreads, smem, stream>>>(a);
  } else {
    LING_CHECK(p.q, "mla decode: neither q nor q_bf16 is set");
    const size_t smem = sizeof(Smem);
    set_max_dynamic_smem(mla_split_kernel, int(smem));
    const dim3 grid(unsigned((p.nh + kHeads - 1) / kHeads), unsigned(sp), unsigned(p.B));
    mla_split_kernel<<<grid, kThreads, smem, stream>>>(a);
  }
  LING_CUDA_CHECK(cudaGetLastError());
  mla_combine_kernel<<<dim3(unsigned(p.nh), unsigned(p.B)), kLat / 4, 0, stream>>>(a);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
