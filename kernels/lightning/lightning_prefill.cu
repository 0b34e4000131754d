// Lightning chunked prefill on tensor cores (architecture.md §2.6 step 8), head dim 128, chunk 64, sm_80+.
// The sequence of each head is cut into `nb` blocks of whole chunks so that nh · nb CTAs fill the GPU:
//   pass 1 (state-only CTAs over the R sub-blocks of each block 0..nb−2, ≥ 2 waves):
//     U_{b,r} = Σ_{j∈(b,r)} e^{g(Ls−1−j)} k_jᵀ v_j, chunk by chunk;
//   pass 2 (scan): S_start_0 = S_in, S_start_{b+1} = e^{gL} S_start_b + Σ_r e^{g·Ls·(R−1−r)} U_{b,r};
//   pass 3 (output CTAs, every block): per chunk c with incoming state S (registers)
//     o_i = scale · [ e^{g(i+1)} q_i S + Σ_{j≤i} e^{g(i−j)} (q_i·k_j) v_j ],  S ← e^{gn} S + Σ_j e^{g(n−1−j)} k_jᵀ v_j
//   and the last block writes the final state.
// Precision (kExact): q/k/v are exact bf16 operands; every fp32 operand that must enter an MMA (the decayed scores
// P, the decayed values e^{g(n−1−j)} v_j of the state update, the state) is split into bf16 hi + lo (two MMAs), so outputs and state keep ~fp32
// accuracy. Without kExact (params.exact = false) only the hi parts enter the MMAs: bf16 operands, fp32
// accumulation — the precision class of the usual chunked kernels — with 2.25× fewer MMAs.
// Layout per CTA (256 threads = 8 warps): warp w owns the state transposed, Sᵀ[dv 16w..16w+15][dk 0..127], as
// mma accumulators; that register layout is exactly the B fragment of Q·S, so Q·S needs no shared memory, and the
// state update decays the Vᵀ fragments in registers. K and V are double-buffered (the next chunk's are requested as
// a chunk starts), Q is refilled mid-chunk: two barriers per output chunk, one per state-pass chunk.
#include <cuda_bf16.h>

#include <algorithm>

#include "common/check.h"
#include "common/launch.cuh"
#include "common/mma.cuh"
#include "ling/kernels/lightning.h"

namespace ling::kernels {
namespace {

constexpr int D = 128;        // head dim (dk = dv)
constexpr int C = 64;         // chunk
constexpr int kPitch = 136;   // bf16 row pitch of [C][D] tiles (+8: conflict-free ldmatrix)
constexpr int kPPitch = 72;   // bf16 row pitch of [C][C] score tiles
constexpr int kThreads = 256;

using Tile = __nv_bfloat16[kPitch];    // one row of a [C][D] tile
using PTile = __nv_bfloat16[kPPitch];  // one row of a [C][C] tile
constexpr int kRegion = 2 * C * kPPitch * 2;  // bytes of the P region: hi + lo tiles (18 KB)

struct Smem {
  __nv_bfloat16 q[C][kPitch];     // chunk i's queries (refilled with chunk i+1's once its scores and Q·S are done)
  __nv_bfloat16 k[2][C][kPitch];  // chunk i's keys in k[i % 2], chunk i+1's streaming into the other
  __nv_bfloat16 v[2][C][kPitch];  // likewise the values
  alignas(16) unsigned char p[kRegion];  // decayed masked scores P, bf16 hi (+ lo with kExact)
  float decay[C + 1];  // decay[m] = e^{g·m}, m = 0..64, correctly rounded to fp32 (double exp, as the reference)
};
__device__ __forceinline__ PTile* phi_tile(Smem& s) { return reinterpret_cast<PTile*>(s.p); }
__device__ __forceinline__ PTile* plo_tile(Smem& s) { return reinterpret_cast<PTile*>(s.p + C * kPPitch * 2); }

struct Args {
  const uint16_t *q, *k, *v;
  void* o;
  float* state;
  const float* g;
  float* ws;    // [nh, nb, dk, dv] fp32 start states of the blocks, or null when nb == 1
  float* ws_u;  // [nh, (nb − 1)·R, dk, dv] fp32 local states of the sub-blocks of blocks 0..nb−2
  int64_t T, nh, ldq, ldk, ldv, ldo, L;  // L = tokens per block (multiple of C)
  int nb;
  int R;        // pass-1 sub-blocks per block (more CTAs for the state pass)
  float scale;
};

// rows [t0, t0 + n) of head h → tile (zeros from row n on), as asynchronous copies (all in flight at once;
// the caller waits with cp_async_wait_all before its barrier).
__device__ __forceinline__ void load_tile(__nv_bfloat16 (*dst)[kPitch], const uint16_t* src, int64_t ld, int64_t t0,
                                          int n, int64_t h) {
#pragma unroll
  for (int idx = threadIdx.x; idx < C * (D / 8); idx += kThreads) {
    const int r = idx >> 4, c = (idx & 15) * 8;
    cp_async16(&dst[r][c], r < n ? src + (t0 + r) * ld + h * D + c : src, r < n);
  }
}

// bf16 pair of (x0, x1) as the MMA's hi operand, and with kExact the lo remainder.
template <bool kExact>
__device__ __forceinline__ void to_operands(float x0, float x1, uint32_t& hi, uint32_t& lo) {
  if constexpr (kExact) split2(x0, x1, hi, lo);
  else hi = pack_bf16(__float2bfloat16_rn(x0), __float2bfloat16_rn(x1));
}

// Sᵀ ← e^{gn} Sᵀ + Ṽᵀ K for this warp's 16 dv rows, Ṽ_j = e^{g(n−1−j)} v_j (rows j ≥ n are zero): the decay is
// applied to the A fragments in registers (split into hi + lo with kExact), so no decayed copy of a tile is built.
// acc[j] = Sᵀ[16w + {g, g+8}][8j + 2t + {0,1}].
template <bool kExact>
__device__ __forceinline__ void state_update(const Smem& s, const Tile* v, const Tile* k, float (&acc)[16][4], int n,
                                             int warp, int lane) {
  const float decay_n = s.decay[n];
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] *= decay_n;
  const int mi = lane >> 3, r = lane & 7, ti = lane & 3;
  auto weight = [&](int j) { return j < n ? s.decay[n - 1 - j] : 0.0f; };
#pragma unroll
  for (int ks = 0; ks < C / 16; ++ks) {
    uint32_t a[4];  // A = Vᵀ (m = dv, k = token) from V[token][dv]: a[0], a[1] tokens 2t, 2t+1; a[2], a[3] + 8
    ldsm_x4_t(a, &v[16 * ks + (mi >> 1) * 8 + r][16 * warp + (mi & 1) * 8]);
    const int j0 = 16 * ks + 2 * ti;
    const float w[4] = {weight(j0), weight(j0 + 1), weight(j0 + 8), weight(j0 + 9)};
    uint32_t ahi[4], alo[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(&a[e]);
      to_operands<kExact>(__low2float(x) * w[(e >> 1) * 2], __high2float(x) * w[(e >> 1) * 2 + 1], ahi[e], alo[e]);
    }
#pragma unroll
    for (int jp = 0; jp < 8; ++jp) {  // B = K (k = token, n = dk) from K[token][dk]
      uint32_t b[4];
      ldsm_x4_t(b, &k[16 * ks + (mi & 1) * 8 + r][16 * jp + (mi >> 1) * 8]);
      mma_bf16(acc[2 * jp], ahi, b[0], b[1]);
      mma_bf16(acc[2 * jp + 1], ahi, b[2], b[3]);
      if constexpr (kExact) {
        mma_bf16(acc[2 * jp], alo, b[0], b[1]);
        mma_bf16(acc[2 * jp + 1], alo, b[2], b[3]);
      }
    }
  }
}

// P[i][j] = (q_i·k_j) e^{g(i−j)} for j ≤ i, else 0; warp w covers rows 16(w/2).., cols 32(w%2)...
template <bool kExact>
__device__ __forceinline__ void decayed_scores(const Smem& s, const Tile* k, PTile* phi, PTile* plo, int warp,
                                               int lane) {
  const int mt = warp >> 1, col0 = (warp & 1) * 32, mi = lane >> 3, r = lane & 7;
  const int gi = lane >> 2, ti = lane & 3;
  float p[4][4] = {};
  if (col0 <= 16 * mt + 15) {
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t a[4];
      ldsm_x4(a, &s.q[16 * mt + (mi & 1) * 8 + r][16 * ks + (mi >> 1) * 8]);
#pragma unroll
      for (int np = 0; np < 2; ++np) {  // B = Kᵀ (k = dk, n = key) from K[key][dk]
        uint32_t b[4];
        ldsm_x4(b, &k[col0 + 16 * np + (mi >> 1) * 8 + r][16 * ks + (mi & 1) * 8]);
        mma_bf16(p[2 * np], a, b[0], b[1]);
        mma_bf16(p[2 * np + 1], a, b[2], b[3]);
      }
    }
  }
#pragma unroll
  for (int nb = 0; nb < 4; ++nb)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = 16 * mt + gi + 8 * half, j = col0 + 8 * nb + 2 * ti;
      const float x0 = j <= i ? p[nb][2 * half] * s.decay[i - j] : 0.0f;
      const float x1 = j + 1 <= i ? p[nb][2 * half + 1] * s.decay[i - j - 1] : 0.0f;
      uint32_t hi, lo;
      to_operands<kExact>(x0, x1, hi, lo);
      *reinterpret_cast<uint32_t*>(&phi[i][j]) = hi;
      if constexpr (kExact) *reinterpret_cast<uint32_t*>(&plo[i][j]) = lo;
    }
}

// O[:, 16w..16w+15] = scale · (diag(e^{g(i+1)}) Q S + P V) in two steps: qs_part (Q and the state) before the
// barrier that publishes P, pv_part (P, V, the stores of rows < n) after it, while the next Q streams in.
template <bool kExact>
__device__ __forceinline__ void qs_part(const Smem& s, const float (&acc)[16][4], float (&o)[4][2][4], int warp,
                                        int lane) {
  const int mi = lane >> 3, r = lane & 7, gi = lane >> 2;
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][nb][e] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    uint32_t bh[2][2], bl[2][2];  // B = S (k = dk, n = dv) straight from this warp's Sᵀ accumulators
#pragma unroll
    for (int nb = 0; nb < 2; ++nb) {
      to_operands<kExact>(acc[2 * ks][2 * nb], acc[2 * ks][2 * nb + 1], bh[nb][0], bl[nb][0]);
      to_operands<kExact>(acc[2 * ks + 1][2 * nb], acc[2 * ks + 1][2 * nb + 1], bh[nb][1], bl[nb][1]);
    }
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      uint32_t q[4];
      ldsm_x4(q, &s.q[16 * mt + (mi & 1) * 8 + r][16 * ks + (mi >> 1) * 8]);
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        mma_bf16(o[mt][nb], q, bh[nb][0], bh[nb][1]);
        if constexpr (kExact) mma_bf16(o[mt][nb], q, bl[nb][0], bl[nb][1]);
      }
    }
  }
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float f = s.decay[16 * mt + gi + 8 * half + 1];
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        o[mt][nb][2 * half] *= f;
        o[mt][nb][2 * half + 1] *= f;
      }
    }
}

template <bool kF32, bool kExact>
__device__ __forceinline__ void pv_part(const Tile* v, const PTile* phi, const PTile* plo, float (&o)[4][2][4],
                                        const Args& a, int64_t t0, int n, int64_t h, int warp, int lane) {
  const int mi = lane >> 3, r = lane & 7, gi = lane >> 2, ti = lane & 3;
#pragma unroll
  for (int ks = 0; ks < C / 16; ++ks) {
    uint32_t b[4];  // B = V (k = token, n = dv) from V[token][dv]
    ldsm_x4_t(b, &v[16 * ks + (mi & 1) * 8 + r][16 * warp + (mi >> 1) * 8]);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      if (mt < ks) continue;  // P is zero above the diagonal
      uint32_t ph[4];
      ldsm_x4(ph, &phi[16 * mt + (mi & 1) * 8 + r][16 * ks + (mi >> 1) * 8]);
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) mma_bf16(o[mt][nb], ph, b[2 * nb], b[2 * nb + 1]);
      if constexpr (kExact) {
        uint32_t pl[4];
        ldsm_x4(pl, &plo[16 * mt + (mi & 1) * 8 + r][16 * ks + (mi >> 1) * 8]);
#pragma unroll
        for (int nb = 0; nb < 2; ++nb) mma_bf16(o[mt][nb], pl, b[2 * nb], b[2 * nb + 1]);
      }
    }
  }
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = 16 * mt + gi + 8 * half;
      if (i >= n) continue;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        const int64_t off = (t0 + i) * a.ldo + h * D + 16 * warp + 8 * nb + 2 * ti;
        const float x0 = o[mt][nb][2 * half] * a.scale, x1 = o[mt][nb][2 * half + 1] * a.scale;
        if constexpr (kF32) {
          __stcs(reinterpret_cast<float2*>(static_cast<float*>(a.o) + off), make_float2(x0, x1));
        } else {
          *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(a.o) + off) = __floats2bfloat162_rn(x0, x1);
        }
      }
    }
}

// One CTA = one (block b, head h). kOut: pass 3 (outputs + final state); otherwise pass 1 (local state U_b).
template <bool kOut, bool kF32, bool kExact>
__global__ void __launch_bounds__(kThreads, 2) lightning_block_kernel(const Args a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const int b = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gi = lane >> 2, ti = lane & 3;
  const int64_t h = blockIdx.y;
  if (threadIdx.x <= C) s.decay[threadIdx.x] = float(exp(double(a.g[h]) * double(threadIdx.x)));
  const int64_t span = kOut ? a.L : a.L / a.R;  // pass 1: CTA b is sub-block b (all sub-blocks are full)
  const int64_t t_begin = int64_t(b) * span, t_end = std::min<int64_t>(a.T, t_begin + span);
  constexpr int64_t DD = int64_t(D) * D;

  float acc[16][4];  // Sᵀ[16w + gi + 8(e/2)][8j + 2ti + e%2]
  const float* s0 = nullptr;
  if constexpr (kOut) s0 = a.nb > 1 ? a.ws + (h * a.nb + b) * DD : a.state + h * DD;
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      acc[j][e] = s0 ? s0[(8 * j + 2 * ti + (e & 1)) * D + 16 * warp + gi + 8 * (e >> 1)] : 0.0f;

  // Chunk i's K and V sit in buffer i % 2 and chunk i+1's are requested as the chunk starts (the previous chunk,
  // the last reader of that buffer, is past the barrier); Q is refilled once the scores and Q·S are done.
  auto chunk_len = [&](int64_t t0) { return int(std::min<int64_t>(C, t_end - t0)); };
  if constexpr (kOut) load_tile(s.q, a.q, a.ldq, t_begin, chunk_len(t_begin), h);
  load_tile(s.k[0], a.k, a.ldk, t_begin, chunk_len(t_begin), h);
  load_tile(s.v[0], a.v, a.ldv, t_begin, chunk_len(t_begin), h);
  cp_async_commit();
  int par = 0;
  for (int64_t t0 = t_begin; t0 < t_end; t0 += C, par ^= 1) {
    const int n = chunk_len(t0);
    const bool has_next = t0 + C < t_end;
    cp_async_wait_all();
    __syncthreads();  // this chunk's tiles have landed; the previous chunk is done with every tile
    if (has_next) {
      load_tile(s.k[par ^ 1], a.k, a.ldk, t0 + C, chunk_len(t0 + C), h);
      load_tile(s.v[par ^ 1], a.v, a.ldv, t0 + C, chunk_len(t0 + C), h);
      cp_async_commit();
    }
    if constexpr (kOut) {
      float o[4][2][4];
      decayed_scores<kExact>(s, s.k[par], phi_tile(s), plo_tile(s), warp, lane);
      qs_part<kExact>(s, acc, o, warp, lane);
      __syncthreads();  // P is complete; Q is free
      if (has_next) {
        load_tile(s.q, a.q, a.ldq, t0 + C, chunk_len(t0 + C), h);
        cp_async_commit();
      }
      pv_part<kF32, kExact>(s.v[par], phi_tile(s), plo_tile(s), o, a, t0, n, h, warp, lane);
    }
    // An output CTA's final state is needed only in the last block (the scan gave every other block's successor).
    if (!kOut || has_next || b == a.nb - 1) state_update<kExact>(s, s.v[par], s.k[par], acc, n, warp, lane);
  }

  float* dst = nullptr;
  if constexpr (kOut) {
    if (b == a.nb - 1) dst = a.state + h * DD;
  } else {
    dst = a.ws_u + (h * (a.nb - 1) * a.R + b) * DD;
  }
  if (!dst) return;
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dst[(8 * j + 2 * ti + (e & 1)) * D + 16 * warp + gi + 8 * (e >> 1)] = acc[j][e];
}

// Pass 2: per head and state element, S_start_0 = S_in, S_start_{b+1} = e^{gL} S_start_b + U_b with
// U_b = Σ_r e^{g·Ls·(R−1−r)} U_{b,r} accumulated sub-block by sub-block (Ls = L / R).
__global__ void lightning_scan_kernel(const float* state, float* ws, const float* ws_u, const float* g, int nb, int R,
                                      int64_t Ls) {
  constexpr int64_t DD = int64_t(D) * D;
  const int64_t h = blockIdx.y, e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= DD) return;
  const float decay = expf(g[h] * float(Ls));
  float S = state[h * DD + e];
  float* w = ws + h * nb * DD + e;
  const float* u = ws_u + h * int64_t(nb - 1) * R * DD + e;
  const int64_t n_sub = int64_t(nb - 1) * R;
  constexpr int kBatch = 8;  // independent loads in flight
  w[0] = S;
  for (int64_t i0 = 0; i0 < n_sub; i0 += kBatch) {
    float x[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) x[i] = i0 + i < n_sub ? u[(i0 + i) * DD] : 0.0f;
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (i0 + i >= n_sub) break;
      S = decay * S + x[i];
      if ((i0 + i + 1) % R == 0) w[((i0 + i + 1) / R) * DD] = S;
    }
  }
}

struct Plan {
  int64_t nb = 1, R = 1, L = 0;  // blocks, sub-blocks per block, tokens per block
};

Plan make_plan(int64_t T, int64_t nh, int64_t requested_blocks, int num_sms) {
  Plan pl;
  const int64_t chunks = (T + C - 1) / C;
  if (chunks <= 1 || nh <= 0) {
    pl.L = std::max<int64_t>(chunks, 1) * C;
    return pl;
  }
  // Two CTAs fit one SM (104 KB of shared memory each): one full wave of nh · nb output CTAs.
  int64_t nb = requested_blocks > 0 ? requested_blocks : std::max<int64_t>(1, (2 * int64_t(num_sms)) / nh);
  nb = std::clamp<int64_t>(nb, 1, chunks);
  const int64_t per_block = (chunks + nb - 1) / nb;  // chunks per block
  pl.nb = (chunks + per_block - 1) / per_block;      // no empty block
  pl.L = per_block * C;
  const int64_t slots = 2 * int64_t(num_sms), pass1 = (pl.nb - 1) * nh;
  if (pl.nb > 1 && 4 * pass1 < 3 * slots) {  // a state pass under 3/4 of a wave: R sub-blocks per block, ≥ 2 waves
    const int64_t want = (2 * slots + pass1 - 1) / pass1;
    int64_t R = per_block;
    for (int64_t r = std::max<int64_t>(want, 1); r < per_block; ++r)
      if (per_block % r == 0) {
        R = r;
        break;
      }
    pl.R = R;
  }
  return pl;
}

}  // namespace

int64_t lightning_prefill_blocks(int64_t T, int64_t nh, int64_t requested_blocks, int num_sms) {
  return make_plan(T, nh, requested_blocks, num_sms).nb;
}

size_t lightning_prefill_workspace_bytes(int64_t T, int64_t nh, int64_t requested_blocks, int num_sms) {
  const Plan pl = make_plan(T, nh, requested_blocks, num_sms);
  return pl.nb > 1 ? size_t(nh) * size_t(pl.nb + (pl.nb - 1) * pl.R) * D * D * sizeof(float) : 0;
}

void launch_lightning_prefill(const LightningPrefillParams& p, cudaStream_t stream) {
  LING_CHECK(p.T >= 0 && p.nh >= 1, "lightning prefill: T = ", p.T, ", nh = ", p.nh, " (need T >= 0, nh >= 1)");
  if (p.T == 0) return;
  LING_CHECK(p.q && p.k && p.v && p.o && p.state && p.g, "lightning prefill: a null q/k/v/o/state/g pointer");
  const int64_t w = p.nh * D;
  Args a{p.q, p.k, p.v, p.o, p.state, p.g, nullptr, nullptr, p.T, p.nh, p.ldq ? p.ldq : w, p.ldk ? p.ldk : w,
         p.ldv ? p.ldv : w, p.ldo ? p.ldo : w, 0, 0, 1, p.scale};
  for (int64_t ld : {a.ldq, a.ldk, a.ldv, a.ldo})
    LING_CHECK(ld % 8 == 0 && ld >= w, "lightning prefill: row stride ", ld, " must be a multiple of 8 and >= nh*128");
  for (const void* ptr : {static_cast<const void*>(p.q), static_cast<const void*>(p.k), static_cast<const void*>(p.v),
                          static_cast<const void*>(p.o)})
    LING_CHECK(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, "lightning prefill: q/k/v/o must be 16-byte aligned");
  LING_CHECK(p.nh <= 65535, "lightning prefill: nh = ", p.nh, " exceeds the grid limit 65535");
  const int sms = device_sm_count();
  const Plan pl = make_plan(p.T, p.nh, p.blocks, sms);
  const int64_t nb = pl.nb;
  a.L = pl.L;
  a.nb = int(nb);
  a.R = int(pl.R);
  if (nb > 1) {
    LING_CHECK(p.workspace, "lightning prefill: ", nb, " blocks need a workspace of ",
               lightning_prefill_workspace_bytes(p.T, p.nh, p.blocks, sms), " bytes");
    a.ws = static_cast<float*>(p.workspace);
    a.ws_u = a.ws + p.nh * nb * D * D;
  }
  const size_t smem = sizeof(Smem);
  auto out_kernel = p.exact ? (p.o_fp32 ? lightning_block_kernel<true, true, true> : lightning_block_kernel<true, false, true>)
                            : (p.o_fp32 ? lightning_block_kernel<true, true, false> : lightning_block_kernel<true, false, false>);
  set_max_dynamic_smem(out_kernel, int(smem));
  if (nb > 1) {
    auto state_kernel = p.exact ? lightning_block_kernel<false, false, true> : lightning_block_kernel<false, false, false>;
    set_max_dynamic_smem(state_kernel, int(smem));
    const unsigned n_sub = unsigned((nb - 1) * pl.R);
    state_kernel<<<dim3(n_sub, unsigned(p.nh)), kThreads, smem, stream>>>(a);
    LING_CUDA_CHECK(cudaGetLastError());
    lightning_scan_kernel<<<dim3(D * D / 256, unsigned(p.nh)), 256, 0, stream>>>(p.state, a.ws, a.ws_u, p.g, a.nb,
                                                                               a.R, a.L / a.R);
    LING_CUDA_CHECK(cudaGetLastError());
  }
  out_kernel<<<dim3(unsigned(nb), unsigned(p.nh)), kThreads, smem, stream>>>(a);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
