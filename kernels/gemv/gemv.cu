// Decode GEMV (gemv.h): y[M, N] (+)= x[M, K]·Wᵀ (+ bias), M ≤ 16, bf16 or fp32 weights, fp32 accumulation.
// Many rows (N > 1024), M = 1 or fp32 weights: one warp per weight row, 8 rows per CTA, lanes over K in 16-byte
// weight loads, eight in flight per lane when M = 1 (a 2,048-wide row is one round trip) and four otherwise; the
// row is read once for all M rows of x (x stays in L1/L2). bf16 weights stay raw bits until the dot (62
// registers at M = 1: four CTAs per SM instead of two).
// Many rows, bf16 weights, 2 ≤ M ≤ 16: tensor cores (tc_tile.cuh) — a CTA of 8 warps per 16 weight rows, the
// warps splitting K, x split into bf16 hi + lo (fp32-activation accuracy), the warps' tiles added in warp order;
// each weight meets the M rows of x inside the MMA instead of M fp32 FMAs with activations streamed from L1.
// Few rows (N ≤ 1024, e.g. the router's E): one CTA of 8 warps per row, K split over the warps, partial sums
// added in warp order (fixed order, deterministic, no atomics).
#include "gemv/tc_tile.cuh"
#include "gemv/vec.cuh"
#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/gemv.h"

#include <algorithm>
#include <type_traits>

namespace ling::kernels {
namespace {

template <int MT, typename T, typename WT = W8<T>>
__global__ void __launch_bounds__(256) k_gemv_warp_row(const float* __restrict__ x, int64_t ldx,
                                                       const T* __restrict__ w, const float* __restrict__ bias,
                                                       float* __restrict__ y, int64_t ldy, int M, int64_t N,
                                                       int64_t K, bool accumulate) {
  const int64_t r = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const T* wr = w + std::min<int64_t>(r, N - 1) * K;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  // U 16-byte loads per lane at a time: one row of K ≤ U·256 is a single round trip to memory.
  constexpr int U = MT == 1 ? 8 : 4;
  int64_t i = int64_t(lane) * 8;
  // The first U weight loads (constant data) go out before waiting for x: with programmatic launch they overlap
  // the previous kernel's tail.
  WT f[U];
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (i + u * 256 < K) f[u].load(wr + i + u * 256);
  pdl_enter();
  if (r >= N) return;
  for (bool first = true; i < K; i += U * 256, first = false) {
    if (!first) {
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (i + u * 256 < K) f[u].load(wr + i + u * 256);
    }
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m < M) {
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (i + u * 256 < K) acc[m] += f[u].dot(x + m * ldx + i + u * 256);
      }
  }
  const float b = bias ? bias[r] : 0.0f;
#pragma unroll
  for (int m = 0; m < MT; ++m)
    if (m < M) {
      const float v = warp_sum(acc[m]) + b;
      if (lane == 0) y[m * ldy + r] = accumulate ? y[m * ldy + r] + v : v;
    }
}

template <int MT, typename T>
__global__ void __launch_bounds__(256) k_gemv_block_row(const float* __restrict__ x, int64_t ldx,
                                                        const T* __restrict__ w, const float* __restrict__ bias,
                                                        float* __restrict__ y, int64_t ldy, int M, int64_t K,
                                                        bool accumulate) {
  __shared__ float red[8][MT];
  const int64_t r = blockIdx.x;
  float v = block_row_dot<MT>(x, ldx, w + r * K, M, K, red, [] {
    pdl_enter();
  });
  if (threadIdx.x < M) {
    v += bias ? bias[r] : 0.0f;
    float* yp = y + threadIdx.x * ldy + r;
    *yp = accumulate ? *yp + v : v;
  }
}

// grid ⌈N / 16⌉ CTAs of 8 warps; NT token tiles of 8 (M ≤ 8·NT).
template <int NT>
__global__ void __launch_bounds__(256) k_gemv_tc(const float* __restrict__ x, int64_t ldx,
                                                 const uint16_t* __restrict__ w, const float* __restrict__ bias,
                                                 float* __restrict__ y, int64_t ldy, int M, int64_t N, int64_t K,
                                                 bool accumulate) {
  pdl_enter();
  __shared__ float red[8 * NT * 4 * 32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t r0 = int64_t(blockIdx.x) * 16;
  const uint16_t* w_g = r0 + g < N ? w + (r0 + g) * K : nullptr;
  const uint16_t* w_g8 = r0 + g + 8 < N ? w + (r0 + g + 8) * K : nullptr;
  const float* x_rows[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) x_rows[j] = 8 * j + g < M ? x + (8 * j + g) * ldx : nullptr;
  float acc[NT][4] = {};
  tc_tile_accumulate<NT, NT == 1 ? 4 : 2>(w_g, w_g8, x_rows, K, warp, 8, acc);
  tc_tile_reduce8<NT>(acc, red);
  if (warp != 0) return;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t row = r0 + g + (r >= 2 ? 8 : 0);
      const int m = 8 * j + 2 * c + (r & 1);
      if (row >= N || m >= M) continue;
      const float v = acc[j][r] + (bias ? bias[row] : 0.0f);
      float* yp = y + m * ldy + row;
      *yp = accumulate ? *yp + v : v;
    }
}

template <int MT, typename T>
void launch_mt(const GemvParams& p, const T* w, int64_t ldx, int64_t ldy, cudaStream_t s) {
  if (p.N <= kGemvBlockRowMaxN)
    launch_pdl(k_gemv_block_row<MT, T>, unsigned(p.N), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.K, p.accumulate);
  else if constexpr (MT == 1 && std::is_same_v<T, uint16_t>) {
    if (!p.raw_bf16)
      launch_pdl(k_gemv_warp_row<1, uint16_t, W8Wide>, unsigned((p.N + 7) / 8), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy,
                 int(p.M), p.N, p.K, p.accumulate);
    else
      launch_pdl(k_gemv_warp_row<1, uint16_t>, unsigned((p.N + 7) / 8), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy,
                 int(p.M), p.N, p.K, p.accumulate);
  } else
    launch_pdl(k_gemv_warp_row<MT, T>, unsigned((p.N + 7) / 8), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K,
               p.accumulate);
}

template <typename T>
void launch_typed(const GemvParams& p, const T* w, cudaStream_t s) {
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldy = p.ldy ? p.ldy : p.N;
  if constexpr (std::is_same_v<T, uint16_t>) {
    if (p.tensor_cores && p.M >= 2 && p.N > kGemvBlockRowMaxN) {
      const unsigned grid = unsigned((p.N + 15) / 16);
      if (p.M <= 8) launch_pdl(k_gemv_tc<1>, grid, 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K, p.accumulate);
      else launch_pdl(k_gemv_tc<2>, grid, 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K, p.accumulate);
      return;
    }
  }
  if (p.M == 1) launch_mt<1>(p, w, ldx, ldy, s);
  else if (p.M == 2) launch_mt<2>(p, w, ldx, ldy, s);
  else if (p.M <= 4) launch_mt<4>(p, w, ldx, ldy, s);
  else if (p.M <= 8) launch_mt<8>(p, w, ldx, ldy, s);
  else launch_mt<16>(p, w, ldx, ldy, s);
}

}  // namespace

void launch_gemv(const GemvParams& p, cudaStream_t stream) {
  LING_CHECK(p.M >= 1 && p.M <= kGemvMaxM, "launch_gemv: M = ", p.M, " outside [1, ", kGemvMaxM,
             "] (larger batches go through cuBLASLt)");
  LING_CHECK(p.N >= 0 && p.K > 0 && p.K % 8 == 0, "launch_gemv: K = ", p.K, " is not a positive multiple of 8");
  LING_CHECK((p.w != nullptr) != (p.w_f32 != nullptr), "launch_gemv: exactly one of w (bf16) and w_f32 must be set");
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldy = p.ldy ? p.ldy : p.N;
  LING_CHECK(ldx >= p.K && ldx % 4 == 0, "launch_gemv: ldx = ", ldx, " must be >= K and a multiple of 4");
  LING_CHECK(ldy >= p.N, "launch_gemv: ldy = ", ldy, " is smaller than N = ", p.N);
  LING_CHECK(p.x && aligned16(p.x), "launch_gemv: x is null or not 16-byte aligned");
  LING_CHECK(aligned16(p.w ? static_cast<const void*>(p.w) : p.w_f32), "launch_gemv: weights not 16-byte aligned");
  LING_CHECK(p.y != nullptr, "launch_gemv: y is null");
  LING_CHECK(p.N < (int64_t(1) << 33), "launch_gemv: N = ", p.N, " too large for one grid");
  if (p.N == 0) return;
  if (p.w) launch_typed(p, p.w, stream);
  else launch_typed(p, p.w_f32, stream);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
