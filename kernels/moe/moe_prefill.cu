// MoE prefill device steps (moe_prefill_kernels.h, architecture.md §2.4):
// - permute: block e counts the slots routed to expert e (0 when not held), then a second kernel places them
//   in slot order (stable: by expert, then slot t·k + s; each thread owns 16 consecutive slots, block scan);
// - gather: permuted rows of x as bf16, 8 values per thread (two float4 loads, one 16-byte store);
// - grouped GEMM (mma.sync m16n8k16 bf16 → fp32): tiles of 128 rows × 128 columns × 64 deep, 8 warps (2 × 4,
//   warp tile 64 × 32), 3-stage cp.async pipeline, ldmatrix from padded rows (72 bf16: conflict-free). Linear
//   block index → (expert, column tile, row tile), row tiles innermost so that the row tiles of one expert share
//   its weight tile in L2; the expert by binary search in the `tiles` prefix. Row fragments past the expert's
//   rows skip their MMAs. gate_up: the 128 weight rows of a tile are 64 gate rows and the matching 64 up rows,
//   interleaved by 16 so that each warp holds gate and up of the same columns → SwiGLU in the epilogue, bf16 act.
// - combine: per token, slots in order s = 0..k−1 (deterministic), float4 over H.
#include <cuda_bf16.h>

#include <algorithm>

#include "common/check.h"
#include "common/mma.cuh"
#include "moe/moe_prefill_kernels.h"

namespace ling::kernels::moe_prefill_detail {
namespace {

constexpr int kThreads = 256;
constexpr int kSlotsPerThread = 16;

__device__ __forceinline__ int block_sum(int v, int* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  int s = 0;
  for (int i = 0; i < kThreads / 32; ++i) s += red[i];
  return s;
}

__global__ void __launch_bounds__(kThreads) k_count(Routing r) {
  __shared__ int red[kThreads / 32];
  const int e = blockIdx.x;
  const bool held = r.gate_up[e] != nullptr && r.down[e] != nullptr;
  const int64_t nk = r.n * r.k;
  int c = 0;
  if (held)
    for (int64_t i = threadIdx.x; i < nk; i += kThreads) c += r.ids[i] == e;
  c = block_sum(c, red);
  if (threadIdx.x == 0) r.counts[e] = held ? c : 0;
}

__global__ void __launch_bounds__(kThreads) k_place(Routing r) {
  __shared__ int red[kThreads / 32];
  __shared__ int scan[kThreads];
  const int e = blockIdx.x, E = int(r.E), tid = threadIdx.x;
  if (e == 0 && tid == 0) {  // the prefixes, for the host copy and the grouped GEMMs
    int o = 0, t = 0;
    for (int i = 0; i < E; ++i) {
      const int c = r.counts[i];
      r.offsets[i] = o, r.tiles[i] = t;
      o += c, t += (c + kTileM - 1) / kTileM;
    }
    r.offsets[E] = o, r.tiles[E] = t;
  }
  const int mine = r.counts[e];  // uniform across the block
  if (mine == 0) return;
  int before = 0;
  for (int i = tid; i < e; i += kThreads) before += r.counts[i];
  int pos = block_sum(before, red);
  const int64_t nk = r.n * r.k, per_block = int64_t(kThreads) * kSlotsPerThread;
  for (int64_t base = 0; base < nk; base += per_block) {
    const int64_t first = base + int64_t(tid) * kSlotsPerThread;
    unsigned hit = 0;
#pragma unroll
    for (int j = 0; j < kSlotsPerThread; ++j)
      if (first + j < nk && r.ids[first + j] == e) hit |= 1u << j;
    const int c = __popc(hit);
    // inclusive block scan of c (Hillis–Steele over shared memory)
    scan[tid] = c;
    __syncthreads();
    for (int o = 1; o < kThreads; o <<= 1) {
      const int v = tid >= o ? scan[tid - o] : 0;
      __syncthreads();
      scan[tid] += v;
      __syncthreads();
    }
    int p = pos + scan[tid] - c;
    const int total = scan[kThreads - 1];
    while (hit) {
      const int j = __ffs(hit) - 1;
      hit &= hit - 1;
      r.perm[p] = int32_t(first + j);
      r.row_of_slot[first + j] = p;
      ++p;
    }
    pos += total;
    __syncthreads();  // scan[] is rewritten next round
  }
}

__global__ void __launch_bounds__(128) k_gather(const float* __restrict__ x, const int32_t* __restrict__ perm,
                                                const int32_t* __restrict__ offsets, int E, uint16_t* __restrict__ xp,
                                                int64_t k, int64_t H) {
  const int64_t row = blockIdx.x;
  if (row >= offsets[E]) return;
  const float* src = x + (perm[row] / k) * H;
  uint16_t* dst = xp + row * H;
  for (int64_t c = int64_t(threadIdx.x) * 8; c < H; c += 128 * 8) {
    const float4 a = *reinterpret_cast<const float4*>(src + c), b = *reinterpret_cast<const float4*>(src + c + 4);
    uint4 o;
    o.x = pack_bf16(__float2bfloat16_rn(a.x), __float2bfloat16_rn(a.y));
    o.y = pack_bf16(__float2bfloat16_rn(a.z), __float2bfloat16_rn(a.w));
    o.z = pack_bf16(__float2bfloat16_rn(b.x), __float2bfloat16_rn(b.y));
    o.w = pack_bf16(__float2bfloat16_rn(b.z), __float2bfloat16_rn(b.w));
    *reinterpret_cast<uint4*>(dst + c) = o;
  }
}

__device__ __forceinline__ float silu_mul(float g, float u) { return (g / (1.0f + expf(-g))) * u; }

__global__ void __launch_bounds__(256) k_swiglu_rows(const float* __restrict__ gu, const int32_t* __restrict__ offsets,
                                                     int E, uint16_t* __restrict__ act, int64_t I) {
  const int64_t row = blockIdx.x;
  if (row >= offsets[E]) return;
  const float* g = gu + row * 2 * I;
  for (int64_t i = int64_t(threadIdx.x) * 2; i < I; i += 512) {
    const float2 a = *reinterpret_cast<const float2*>(g + i), b = *reinterpret_cast<const float2*>(g + I + i);
    *reinterpret_cast<uint32_t*>(act + row * I + i) =
        pack_bf16(__float2bfloat16_rn(silu_mul(a.x, b.x)), __float2bfloat16_rn(silu_mul(a.y, b.y)));
  }
}

__global__ void __launch_bounds__(256) k_combine(const float* __restrict__ y, const int32_t* __restrict__ row_of_slot,
                                                 const float* __restrict__ weights, float* __restrict__ out, int k,
                                                 int64_t H, bool accumulate) {
  __shared__ int64_t rows[32];
  __shared__ float wts[32];
  const int64_t t = blockIdx.x;
  if (threadIdx.x < k) {
    rows[threadIdx.x] = row_of_slot[t * k + threadIdx.x];
    wts[threadIdx.x] = weights[t * k + threadIdx.x];
  }
  __syncthreads();
  for (int64_t c = (int64_t(blockIdx.y) * 256 + threadIdx.x) * 4; c < H; c += int64_t(gridDim.y) * 256 * 4) {
    float4 acc = accumulate ? *reinterpret_cast<const float4*>(out + t * H + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s = 0; s < k; ++s) {
      if (rows[s] < 0) continue;
      const float4 v = *reinterpret_cast<const float4*>(y + rows[s] * H + c);
      const float w = wts[s];
      acc.x += w * v.x, acc.y += w * v.y, acc.z += w * v.z, acc.w += w * v.w;
    }
    *reinterpret_cast<float4*>(out + t * H + c) = acc;
  }
}

// ---- grouped GEMM ----
constexpr int kBM = kTileM, kBN = 128, kBK = 64, kStages = 3, kPitch = kBK + 8;
constexpr int kStageElems = (kBM + kBN) * kPitch;
constexpr size_t kGemmSmem = size_t(kStages) * kStageElems * sizeof(uint16_t);

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

struct GemmArgs {
  const uint16_t* a;               // [rows, K] permuted activations
  const uint16_t* const* w;        // [E] weight table
  const int32_t* offsets;          // [E + 1]
  const int32_t* tiles;            // [E + 1]
  void* c;                         // act bf16 [rows, I] (gate_up) or y fp32 [rows, H] (down)
  int E, K, N, nt;                 // N: output columns (I or H); nt: column tiles per expert
};

// kGateUp: weight rows of tile column c (warp c / 32, r = c % 32): gate row j or up row I + j, j = 64·tile +
// 16·warp + r % 16 (r < 16: gate). Otherwise weight row 128·tile + c.
template <bool kGateUp>
__global__ void __launch_bounds__(kThreads, 2) k_grouped_gemm(GemmArgs g) {
  extern __shared__ __align__(16) uint16_t smem[];
  const int64_t L = blockIdx.x;
  const int total = g.tiles[g.E];
  if (L >= int64_t(total) * g.nt) return;
  int lo = 0, hi = g.E - 1;  // largest e with tiles[e]·nt ≤ L
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (int64_t(g.tiles[mid]) * g.nt <= L) lo = mid;
    else hi = mid - 1;
  }
  const int e = lo;
  const int mt_e = g.tiles[e + 1] - g.tiles[e];
  const int64_t local = L - int64_t(g.tiles[e]) * g.nt;
  const int nt = int(local / mt_e), mt = int(local % mt_e);
  const int64_t row0 = int64_t(g.offsets[e]) + int64_t(mt) * kBM;
  const int rows = int(min(int64_t(kBM), int64_t(g.offsets[e + 1]) - row0));
  const uint16_t* W = g.w[e];
  const int K = g.K, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wm = warp >> 2, wn = warp & 3;

  // Per thread: 4 A chunks and 4 B chunks of 16 bytes per stage (row = chunk / 8, column = 8·(chunk % 8)).
  const uint16_t* a_src[4];
  const uint16_t* b_src[4];
  bool a_ok[4], b_ok[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int ch = tid + i * kThreads, r = ch >> 3, col = (ch & 7) * 8;
    a_ok[i] = r < rows;
    a_src[i] = g.a + (row0 + (a_ok[i] ? r : 0)) * K + col;
    int64_t wr;
    if (kGateUp) {
      const int j = nt * 64 + 16 * (r >> 5) + (r & 15);
      b_ok[i] = j < g.N;
      wr = (r & 31) < 16 ? j : int64_t(g.N) + j;
    } else {
      wr = int64_t(nt) * kBN + r;
      b_ok[i] = wr < g.N;
    }
    b_src[i] = W + (b_ok[i] ? wr : 0) * K + col;
  }
  const int KT = (K + kBK - 1) / kBK;
  auto load = [&](int kt, int slot) {
    uint16_t* as = smem + slot * kStageElems;
    uint16_t* bs = as + kBM * kPitch;
    const int k0 = kt * kBK;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int ch = tid + i * kThreads, r = ch >> 3, col = (ch & 7) * 8;
      const bool kin = k0 + col < K;
      cp_async16(as + r * kPitch + col, a_src[i] + (kin ? k0 : 0), a_ok[i] && kin);
      cp_async16(bs + r * kPitch + col, b_src[i] + (kin ? k0 : 0), b_ok[i] && kin);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;
  int mfr = (rows - wm * 64 + 15) / 16;  // row fragments of this warp holding rows (warp-uniform)
  mfr = max(0, min(4, mfr));

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < KT) load(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    if (kt + kStages - 1 < KT) load(kt + kStages - 1, (kt + kStages - 1) % kStages);
    cp_async_commit();
    const uint16_t* as = smem + (kt % kStages) * kStageElems;
    const uint16_t* bs = as + kBM * kPitch;
    if (mfr == 0) continue;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t bf[4][2];
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        uint32_t r4[4];
        const int n = wn * 32 + p * 16 + (lane & 7) + ((lane >> 4) << 3), kc = kk + ((lane >> 3) & 1) * 8;
        ldsm_x4(r4, bs + n * kPitch + kc);
        bf[2 * p][0] = r4[0], bf[2 * p][1] = r4[1], bf[2 * p + 1][0] = r4[2], bf[2 * p + 1][1] = r4[3];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (i >= mfr) break;
        uint32_t af[4];
        ldsm_x4(af, as + (wm * 64 + i * 16 + (lane & 15)) * kPitch + kk + (lane >> 4) * 8);
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], af, bf[j][0], bf[j][1]);
      }
    }
  }
  cp_async_wait<0>();

  const int gid = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (i >= mfr) break;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int lr = wm * 64 + i * 16 + gid + 8 * h;
      if (lr >= rows) continue;
      const int64_t row = row0 + lr;
      if (kGateUp) {
        uint16_t* act = static_cast<uint16_t*>(g.c) + row * g.N;
#pragma unroll
        for (int f = 0; f < 2; ++f) {
          const int j = nt * 64 + 16 * wn + 8 * f + 2 * t4;
          if (j >= g.N) continue;
          const float v0 = silu_mul(acc[i][f][2 * h], acc[i][f + 2][2 * h]);
          const float v1 = silu_mul(acc[i][f][2 * h + 1], acc[i][f + 2][2 * h + 1]);
          *reinterpret_cast<uint32_t*>(act + j) = pack_bf16(__float2bfloat16_rn(v0), __float2bfloat16_rn(v1));
        }
      } else {
        float* y = static_cast<float*>(g.c) + row * g.N;
#pragma unroll
        for (int f = 0; f < 4; ++f) {
          const int col = nt * kBN + 32 * wn + 8 * f + 2 * t4;
          if (col >= g.N) continue;
          *reinterpret_cast<float2*>(y + col) = make_float2(acc[i][f][2 * h], acc[i][f][2 * h + 1]);
        }
      }
    }
  }
}

// Upper bound of the row tiles over all experts: Σ⌈c_e / kBM⌉ ≤ nk / kBM + (experts with rows ≤ min(E, nk)).
int64_t tile_bound(int64_t nk, int64_t E) { return (nk + kBM - 1) / kBM + std::min(E, nk); }

void grouped(bool gate_up, const GemmArgs& g, int64_t nk, cudaStream_t stream) {
  const int64_t blocks = tile_bound(nk, g.E) * g.nt;
  LING_CHECK(blocks < (int64_t(1) << 31), "moe prefill: ", blocks, " GEMM tiles exceed the grid limit");
  if (gate_up) k_grouped_gemm<true><<<unsigned(blocks), kThreads, kGemmSmem, stream>>>(g);
  else k_grouped_gemm<false><<<unsigned(blocks), kThreads, kGemmSmem, stream>>>(g);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void launch_permute(const Routing& r, cudaStream_t stream) {
  k_count<<<unsigned(r.E), kThreads, 0, stream>>>(r);
  LING_CUDA_CHECK(cudaGetLastError());
  k_place<<<unsigned(r.E), kThreads, 0, stream>>>(r);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_gather(const float* x, const int32_t* perm, const int32_t* offsets, int64_t E, uint16_t* xp, int64_t nk,
                   int64_t k, int64_t H, cudaStream_t stream) {
  k_gather<<<unsigned(nk), 128, 0, stream>>>(x, perm, offsets, int(E), xp, k, H);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_swiglu_rows(const float* gu, const int32_t* offsets, int64_t E, uint16_t* act, int64_t nk, int64_t I,
                        cudaStream_t stream) {
  k_swiglu_rows<<<unsigned(nk), 256, 0, stream>>>(gu, offsets, int(E), act, I);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_grouped_gate_up(const uint16_t* xp, const uint16_t* const* gate_up, const int32_t* offsets,
                            const int32_t* tiles, uint16_t* act, int64_t nk, int64_t E, int64_t H, int64_t I,
                            cudaStream_t stream) {
  const GemmArgs g{xp, gate_up, offsets, tiles, act, int(E), int(H), int(I), int((I + 63) / 64)};
  grouped(true, g, nk, stream);
}

void launch_grouped_down(const uint16_t* act, const uint16_t* const* down, const int32_t* offsets,
                         const int32_t* tiles, float* y, int64_t nk, int64_t E, int64_t H, int64_t I,
                         cudaStream_t stream) {
  const GemmArgs g{act, down, offsets, tiles, y, int(E), int(I), int(H), int((H + kBN - 1) / kBN)};
  grouped(false, g, nk, stream);
}

void launch_combine(const float* y, const int32_t* row_of_slot, const float* weights, float* out, int64_t n,
                    int64_t k, int64_t H, bool accumulate, cudaStream_t stream) {
  const int64_t chunks = (H / 4 + 255) / 256;
  k_combine<<<dim3(unsigned(n), unsigned(std::min<int64_t>(chunks, 65535))), 256, 0, stream>>>(
      y, row_of_slot, weights, out, int(k), H, accumulate);
  LING_CUDA_CHECK(cudaGetLastError());
}

void prepare_grouped_gemm() {
  LING_CUDA_CHECK(cudaFuncSetAttribute(k_grouped_gemm<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kGemmSmem)));
  LING_CUDA_CHECK(cudaFuncSetAttribute(k_grouped_gemm<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kGemmSmem)));
}

}  // namespace ling::kernels::moe_prefill_detail
