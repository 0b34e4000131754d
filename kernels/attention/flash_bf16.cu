// Causal flash attention on tensor cores (attention.h, BF16 path): bf16 q/k/v, fp32 accumulation and softmax,
// fp32 output. One CTA = 128 or 256 query rows of one head; warp w owns 16·MT consecutive rows (MT = 1: Q
// fragments kept in registers, keys in tiles of 64; MT = 2: Q fragments re-read from shared memory, each K/V
// fragment feeds two MMAs, keys in tiles of 32). Keys stream through shared memory (K and V, two cp.async stages:
// tile j+1 loads while tile j computes). Per key tile and warp: S = Q·Kᵀ (mma m16n8k16, K rows as the col-major B
// operand), online softmax on the accumulators (row max/sum over the 4 lanes of a quad; the accumulator rescale
// is skipped while no row maximum of the warp moves), P rounded to bf16 and reused in registers as the A operand
// of O += P·V (V through ldmatrix.trans). Key tiles beyond the CTA's last visible key are never loaded; a warp
// skips tiles wholly above its own rows. CTAs run heaviest query tiles first. Shared memory rows are padded by 8
// bf16 (odd number of 16-byte chunks: conflict-free ldmatrix). Limits: dk, dv from the instantiation list below
// (multiples of 16; registers bound dv ≤ 128).
#include <cuda_bf16.h>

#include <cmath>

#include "attention/flash_attention.cuh"
#include "common/check.h"
#include "common/launch.cuh"
#include "common/mma.cuh"

namespace ling::kernels::flash {
namespace {

// MT: m16 tiles per warp (16·MT rows; MT 2 reuses each K/V fragment twice: half the shared-memory reads per MMA),
// BN: keys per tile, BM: query rows per CTA (256: each K/V tile loaded once for twice the rows). Warps = BM / (16·MT).
template <int DK, int DV, int MT, int BN, int BM>
struct Cfg {
  static constexpr int kBM = BM;
  static constexpr int kWarps = BM / (16 * MT), kThreads = kWarps * 32;
  static constexpr int QP = DK + 8, KP = DK + 8, VP = DV + 8;  // smem pitches (bf16 elements)
  static constexpr int kQ = kBM * QP, kK = BN * KP, kV = BN * VP, kStage = kK + kV;
  static constexpr size_t kSmem = size_t(kQ + 2 * kStage) * 2;
  static constexpr int kMinBlocks = kWarps == 4 ? 2 : 1;  // 4 warps: two CTAs per SM
};

template <int DK, int DV, int MT, int BN, int BM>
__global__ void __launch_bounds__(Cfg<DK, DV, MT, BN, BM>::kThreads, Cfg<DK, DV, MT, BN, BM>::kMinBlocks)
    flash_bf16_kernel(Args a) {
  using C = Cfg<DK, DV, MT, BN, BM>;
  constexpr int kThreads = C::kThreads, kBM = C::kBM;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* sKV = sQ + C::kQ;  // stage s: K at sKV + s·kStage, V right after it

  const int h = blockIdx.x;
  const int64_t m0 = int64_t(gridDim.y - 1 - blockIdx.y) * kBM;  // heaviest (last) query tiles first
  const int g = h / a.G;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int rows = int(min64(kBM, a.T - m0));
  const int64_t n_end = min64(a.S, a.q_pos0 + m0 + rows);  // keys [0, n_end) are visible to some row
  const int nt = int((n_end + BN - 1) / BN);

  const __nv_bfloat16* qg = static_cast<const __nv_bfloat16*>(a.q) + m0 * a.ldq + int64_t(h) * DK;
  const __nv_bfloat16* kg = static_cast<const __nv_bfloat16*>(a.k) + int64_t(g) * DK;
  const __nv_bfloat16* vg = static_cast<const __nv_bfloat16*>(a.v) + int64_t(g) * DV;

  constexpr int QCH = DK / 8, VCH = DV / 8;  // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < kBM * QCH; idx += kThreads) {
    const int r = idx / QCH, c = (idx % QCH) * 8;
    cp_async16(sQ + r * C::QP + c, r < rows ? qg + r * a.ldq + c : qg, r < rows);
  }
  auto load_kv = [&](int tile, int stage) {
    __nv_bfloat16* sK = sKV + stage * C::kStage;
    __nv_bfloat16* sV = sK + C::kK;
    const int64_t n0 = int64_t(tile) * BN;
    for (int idx = threadIdx.x; idx < BN * QCH; idx += kThreads) {
      const int r = idx / QCH, c = (idx % QCH) * 8;
      const bool ok = n0 + r < n_end;
      cp_async16(sK + r * C::KP + c, ok ? kg + (n0 + r) * a.ldk + c : kg, ok);
    }
    for (int idx = threadIdx.x; idx < BN * VCH; idx += kThreads) {
      const int r = idx / VCH, c = (idx % VCH) * 8;
      const bool ok = n0 + r < n_end;
      cp_async16(sV + r * C::VP + c, ok ? vg + (n0 + r) * a.ldv + c : vg, ok);
    }
  };
  load_kv(0, 0);
  cp_async_commit();  // group: Q + key tile 0

  const float sl = a.scale * 1.4426950408889634f;  // scores in log2 units
  const int quad_row = lane >> 2, quad_col = (lane & 3) * 2;
  const int wrow0 = warp * 16 * MT;  // the warp's first row in the tile
  // Absolute positions of the warp's first and last rows; lane rows: wrow0 + 16·mt + quad_row (+ 8).
  const int64_t warp_first = a.q_pos0 + m0 + wrow0, warp_last = warp_first + 16 * MT - 1;
  // A-fragment address of the warp's Q rows (m tile 0, k 0) for ldmatrix.
  const __nv_bfloat16* q_frag = sQ + (wrow0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * C::QP + (lane >> 4) * 8;

  uint32_t qf[MT == 1 ? DK / 16 : 1][4];  // MT 1: the warp's Q fragments stay in registers
  float acc[MT][DV / 8][4];
  float m_run[MT][2], l_run[MT][2];  // running max (log2 units) and per-lane partial sums, rows g and g + 8
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.0f;
#pragma unroll
    for (int i = 0; i < DV / 8; ++i) acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.0f;
  }

  for (int j = 0; j < nt; ++j) {
    if (j + 1 < nt) {
      load_kv(j + 1, (j + 1) & 1);
      cp_async_commit();
      cp_async_wait_group<1>();
    } else {
      cp_async_wait_group<0>();
    }
    __syncthreads();
    if constexpr (MT == 1) {
      if (j == 0) {
#pragma unroll
        for (int kk = 0; kk < DK / 16; ++kk) ldsm_x4(qf[kk], q_frag + kk * 16);
      }
    }
    const int64_t n0 = int64_t(j) * BN;
    if (n0 <= warp_last && wrow0 < rows) {  // else the tile is above this warp's rows, or it has no rows
      const __nv_bfloat16* sK = sKV + (j & 1) * C::kStage;
      const __nv_bfloat16* sV = sK + C::kK;
      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < DK / 16; ++kk) {
        uint32_t qa[MT][4];
        if constexpr (MT > 1) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) ldsm_x4(qa[mt], q_frag + mt * 16 * C::QP + kk * 16);
        }
#pragma unroll
        for (int nn = 0; nn < BN / 16; ++nn) {
          uint32_t b[4];
          ldsm_x4(b, sK + (nn * 16 + (lane >> 4) * 8 + (lane & 7)) * C::KP + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint32_t* af = MT == 1 ? qf[MT == 1 ? kk : 0] : qa[mt];
            mma_bf16(s[mt][2 * nn], af, b[0], b[1]);
            mma_bf16(s[mt][2 * nn + 1], af, b[2], b[3]);
          }
        }
      }
      // Causal mask: key n0 + c is above row wrow0 + r iff c − r > warp_first − n0. Keys ≥ n_end (zero-filled)
      // are above every row that is stored, so only the causal test is needed.
      const bool mask = n0 + BN - 1 > warp_first;
      const int d0 = int(warp_first - n0);
      uint32_t pa[MT][BN / 16][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        // Scale, mask, row maxima of rows g (lo) and g + 8 (hi).
        float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[mt][i][e] * sl;
            if (mask && i * 8 + quad_col + (e & 1) - (16 * mt + quad_row + (e >> 1) * 8) > d0) x = -INFINITY;
            s[mt][i][e] = x;
          }
          mx_lo = fmaxf(mx_lo, fmaxf(s[mt][i][0], s[mt][i][1]));
          mx_hi = fmaxf(mx_hi, fmaxf(s[mt][i][2], s[mt][i][3]));
        }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
          mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
          mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
        }
        const float mn_lo = fmaxf(m_run[mt][0], mx_lo), mn_hi = fmaxf(m_run[mt][1], mx_hi);
        // A row with no visible key yet keeps max −inf: offset 0 keeps exp2 at 0 instead of NaN.
        const float off_lo = mn_lo == -INFINITY ? 0.0f : mn_lo, off_hi = mn_hi == -INFINITY ? 0.0f : mn_hi;
        const float corr_lo = fast_exp2(m_run[mt][0] - off_lo), corr_hi = fast_exp2(m_run[mt][1] - off_hi);
        m_run[mt][0] = mn_lo, m_run[mt][1] = mn_hi;
        float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
          const float p0 = fast_exp2(s[mt][i][0] - off_lo), p1 = fast_exp2(s[mt][i][1] - off_lo);
          const float p2 = fast_exp2(s[mt][i][2] - off_hi), p3 = fast_exp2(s[mt][i][3] - off_hi);
          sum_lo += p0 + p1;
          sum_hi += p2 + p3;
          // S n-tile i → A fragment of key block i/2: registers (0,1) for even i, (2,3) for odd i.
          pa[mt][i >> 1][(i & 1) * 2 + 0] = pack_bf16(__float2bfloat16_rn(p0), __float2bfloat16_rn(p1));
          pa[mt][i >> 1][(i & 1) * 2 + 1] = pack_bf16(__float2bfloat16_rn(p2), __float2bfloat16_rn(p3));
        }
        l_run[mt][0] = l_run[mt][0] * corr_lo + sum_lo;  // per-lane partial sums; the quad is summed at the end
        l_run[mt][1] = l_run[mt][1] * corr_hi + sum_hi;
        if (__any_sync(0xffffffffu, corr_lo != 1.0f || corr_hi != 1.0f)) {  // skipped once the maxima settle
#pragma unroll
          for (int i = 0; i < DV / 8; ++i) {
            acc[mt][i][0] *= corr_lo, acc[mt][i][1] *= corr_lo;
            acc[mt][i][2] *= corr_hi, acc[mt][i][3] *= corr_hi;
          }
        }
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int nn = 0; nn < DV / 16; ++nn) {
          uint32_t b[4];
          ldsm_x4_t(b, sV + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * C::VP + nn * 16 + (lane >> 4) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16(acc[mt][2 * nn], pa[mt][kk], b[0], b[1]);
            mma_bf16(acc[mt][2 * nn + 1], pa[mt][kk], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();  // stage j & 1 is free for tile j + 2
  }

#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float l_lo = l_run[mt][0], l_hi = l_run[mt][1];
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
      l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
    }
    const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
    const int r_lo = wrow0 + 16 * mt + quad_row;
    float* og = a.o + m0 * a.ldo + int64_t(h) * DV + quad_col;
#pragma unroll
    for (int i = 0; i < DV / 8; ++i) {
      if (r_lo < rows)
        *reinterpret_cast<float2*>(og + r_lo * a.ldo + i * 8) =
            make_float2(acc[mt][i][0] * inv_lo, acc[mt][i][1] * inv_lo);
      if (r_lo + 8 < rows)
        *reinterpret_cast<float2*>(og + (r_lo + 8) * a.ldo + i * 8) =
            make_float2(acc[mt][i][2] * inv_hi, acc[mt][i][3] * inv_hi);
    }
  }
}

template <int DK, int DV, int MT, int BN, int BM>
void launch_cfg(const Args& a, cudaStream_t stream) {
  using C = Cfg<DK, DV, MT, BN, BM>;
  auto kernel = flash_bf16_kernel<DK, DV, MT, BN, BM>;
  set_max_dynamic_smem(kernel, int(C::kSmem));
  const dim3 grid(unsigned(a.nh), unsigned((a.T + BM - 1) / BM));
  kernel<<<grid, C::kThreads, C::kSmem, stream>>>(a);
  LING_CUDA_CHECK(cudaGetLastError());
}

// warp_rows 16: 8 warps × 16 rows (128 per CTA), keys in tiles of 64. warp_rows 32: 4 or 8 warps × 32 rows
// (cta_rows 128 or 256), keys in tiles of 32 (register budget).
template <int DK, int DV>
void launch_dims(const Args& a, int warp_rows, int cta_rows, cudaStream_t stream) {
  if (warp_rows == 16) return launch_cfg<DK, DV, 1, 64, 128>(a, stream);
  if (cta_rows == 256) return launch_cfg<DK, DV, 2, 32, 256>(a, stream);
  return launch_cfg<DK, DV, 2, 32, 128>(a, stream);
}

}  // namespace

int key_tile(int warp_rows) { return warp_rows == 16 ? 64 : 32; }

bool bf16_dims_supported(int dk, int dv) {
  return (dk == 64 || dk == 128 || dk == 192) && (dv == 64 || dv == 128);
}

void launch_bf16(const Args& a, int warp_rows, int cta_rows, cudaStream_t stream) {
#define LING_FLASH_DIMS(DK, DV) \
  if (a.dk == DK && a.dv == DV) return launch_dims<DK, DV>(a, warp_rows, cta_rows, stream);
  LING_FLASH_DIMS(64, 64)
  LING_FLASH_DIMS(64, 128)
  LING_FLASH_DIMS(128, 64)
  LING_FLASH_DIMS(128, 128)
  LING_FLASH_DIMS(192, 64)
  LING_FLASH_DIMS(192, 128)
#undef LING_FLASH_DIMS
  LING_THROW("flash attention (bf16): no kernel for dk = ", a.dk, ", dv = ", a.dv);
}

}  // namespace ling::kernels::flash
