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
// With an AddNormTail (M = 1) the last CTA adds y to the residual row and writes its RMSNorm (norm.h); with an
// AddNormHead (M = 1, bf16, many rows) every CTA forms its x as the residual add + RMSNorm of the rows before, with
// a GateHead as the Lightning output gate of o.
#include "gemv/tc_tile.cuh"
#include "gemv/vec.cuh"
#include "norm/add_norm_head.cuh"
#include "norm/add_norm_tail.cuh"
#include "norm/gate_head.cuh"
#include "common/check.h"
#include "common/flags.cuh"
#include "common/launch.cuh"
#include "ling/kernels/gemv.h"

#include <algorithm>
#include <type_traits>

namespace ling::kernels {
namespace {

// kHead (M = 1): x is formed in shared memory after the wait — kNormHead: the add + norm head's row
// (norm/add_norm_head.cuh), kGateHead: the gate head's (norm/gate_head.cuh).
constexpr int kNoHead = 0, kNormHead = 1, kGateHead = 2;
// kDone: the CTA raises its row group's counter once its rows are written (GemvParams::done).
struct DoneRows {
  unsigned* done;
  int64_t rows, period, group;
};
// The warp-per-row GEMV (the kernels below: the plain form, and the one-row forms with a head or counted rows).
template <int MT, typename T, typename WT, int kHead, bool kDone>
__device__ __forceinline__ void gemv_warp_row(const float* __restrict__ x, int64_t ldx, const T* __restrict__ w,
                                              const float* __restrict__ bias, float* __restrict__ y, int64_t ldy,
                                              int M, int64_t N, int64_t K, bool accumulate, AddNormTail tail,
                                              AddNormHead head, GateHead gate, DoneRows done) {
  constexpr bool HEAD = kHead != kNoHead;
  static_assert(!HEAD || MT == 1, "a head is for one row");
  extern __shared__ __align__(16) float head_smem[];
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
  if constexpr (kHead == kNormHead) add_norm_head_begin(head, head_smem);
  if constexpr (kHead == kGateHead) gate_head_begin(gate, head_smem);
  pdl_enter();
  if constexpr (HEAD) {  // every thread, before any warp leaves
    if constexpr (kHead == kNormHead) add_norm_head<2>(head, head_smem);
    else gate_head(gate, head_smem);
    x = head_smem;
  }
  if (r >= N) {
    if constexpr (MT == 1)
      if (tail.counter) add_norm_tail(tail, y);  // every thread of the CTA takes part in the tail's count
    return;
  }
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
          if (i + u * 256 < K) acc[m] += f[u].template dot<HEAD>(x + m * ldx + i + u * 256);
      }
  }
  const float b = bias ? bias[r] : 0.0f;
#pragma unroll
  for (int m = 0; m < MT; ++m)
    if (m < M) {
      const float v = warp_sum(acc[m]) + b;
      if (lane == 0) y[m * ldy + r] = accumulate ? y[m * ldy + r] + v : v;
    }
  if constexpr (MT == 1)  // (launch_gemv: a tail needs M = 1)
    if (tail.counter) add_norm_tail(tail, y);
  if constexpr (kDone) {  // (launch_gemv: every warp of a counted CTA has a row, so none left early)
    const int64_t r0 = int64_t(blockIdx.x) * 8;
    if (r0 < done.rows) {
      __syncthreads();
      if (threadIdx.x == 0) flag_add_release(done.done + (r0 % done.period) / done.group);
    }
  }
}

template <int MT, typename T, typename WT = W8<T>>
__global__ void __launch_bounds__(256) k_gemv_warp_row(const float* __restrict__ x, int64_t ldx,
                                                       const T* __restrict__ w, const float* __restrict__ bias,
                                                       float* __restrict__ y, int64_t ldy, int M, int64_t N,
                                                       int64_t K, bool accumulate, AddNormTail tail) {
  gemv_warp_row<MT, T, WT, kNoHead, false>(x, ldx, w, bias, y, ldy, M, N, K, accumulate, tail, {}, {}, {});
}
// One row with a head or counted rows: the raw-weight form held to 64 registers (four CTAs per SM, as the plain
// one), the widened form to 128.
template <typename WT, int kHead, bool kDone>
__global__ void __launch_bounds__(256, std::is_same_v<WT, W8<uint16_t>> ? 4 : 2)
    k_gemv_warp_row_head(const float* __restrict__ x, int64_t ldx, const uint16_t* __restrict__ w,
                         const float* __restrict__ bias, float* __restrict__ y, int64_t ldy, int M, int64_t N,
                         int64_t K, bool accumulate, AddNormTail tail, AddNormHead head, GateHead gate,
                         DoneRows done) {
  gemv_warp_row<1, uint16_t, WT, kHead, kDone>(x, ldx, w, bias, y, ldy, M, N, K, accumulate, tail, head, gate, done);
}

template <int MT, typename T>
__global__ void __launch_bounds__(256) k_gemv_block_row(const float* __restrict__ x, int64_t ldx,
                                                        const T* __restrict__ w, const float* __restrict__ bias,
                                                        float* __restrict__ y, int64_t ldy, int M, int64_t K,
                                                        bool accumulate, AddNormTail tail) {
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
  if constexpr (MT == 1)
    if (tail.counter) add_norm_tail(tail, y);
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
    launch_pdl(k_gemv_block_row<MT, T>, unsigned(p.N), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.K, p.accumulate,
               p.tail);
  else if constexpr (MT == 1 && std::is_same_v<T, uint16_t>) {
    const unsigned grid = unsigned((p.N + 7) / 8);
    const DoneRows done{p.done, p.done_rows, p.done_period, p.done_group};
    const auto head = [&](auto kernel, size_t smem) {
      if (smem) set_max_dynamic_smem(kernel, int(smem));
      launch_pdl(kernel, grid, 256, smem, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K, p.accumulate, p.tail,
                 p.head, p.gate_head, done);
    };
    const auto plain = [&](auto kernel) {
      launch_pdl(kernel, grid, 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K, p.accumulate, p.tail);
    };
    if (p.done) {  // (raw weights, no gate head: launch_gemv)
      if (p.head.h_in) head(k_gemv_warp_row_head<W8<uint16_t>, kNormHead, true>, add_norm_head_smem(p.head));
      else head(k_gemv_warp_row_head<W8<uint16_t>, kNoHead, true>, 0);
    } else if (p.head.h_in) {
      const size_t smem = add_norm_head_smem(p.head);
      if (p.raw_bf16) head(k_gemv_warp_row_head<W8<uint16_t>, kNormHead, false>, smem);
      else head(k_gemv_warp_row_head<W8Wide, kNormHead, false>, smem);
    } else if (p.gate_head.o) {
      const size_t smem = gate_head_smem(p.gate_head);
      if (p.raw_bf16) head(k_gemv_warp_row_head<W8<uint16_t>, kGateHead, false>, smem);
      else head(k_gemv_warp_row_head<W8Wide, kGateHead, false>, smem);
    } else if (!p.raw_bf16) {
      plain(k_gemv_warp_row<1, uint16_t, W8Wide>);
    } else {
      plain(k_gemv_warp_row<1, uint16_t>);
    }
  } else
    launch_pdl(k_gemv_warp_row<MT, T>, unsigned((p.N + 7) / 8), 256, 0, s, p.x, ldx, w, p.bias, p.y, ldy, int(p.M), p.N, p.K,
               p.accumulate, p.tail);
}

template <typename T>
void launch_typed(const GemvParams& p, const T* w, cudaStream_t s) {
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldy = p.ldy ? p.ldy : p.N;
  if constexpr (std::is_same_v<T, uint16_t>) {
    if (p.tensor_cores && p.M >= 2 && p.N > kGemvBlockRowMaxN) {  // (no tail: it is for M = 1)
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
  LING_CHECK(!p.tail.counter || p.M == 1, "launch_gemv: the add + norm tail needs M = 1 (M = ", p.M, ")");
  check_add_norm_tail(p.tail, p.y, p.N, "launch_gemv");
  check_add_norm_head(p.head, p.K, "launch_gemv");
  LING_CHECK(!p.head.h_in || gemv_takes_head(p.M, p.N, p.w),
             "launch_gemv: an add + norm head needs one row, bf16 weights and N > 1024 (M = ", p.M, ", N = ", p.N, ")");
  LING_CHECK(!p.head.h_in || p.x == p.head.y, "launch_gemv: with an add + norm head, x must be the head's y");
  LING_CHECK(!p.head.h_in || !p.tail.counter, "launch_gemv: an add + norm head and a tail in one launch");
  check_gate_head(p.gate_head, p.K, "launch_gemv");
  LING_CHECK(!p.gate_head.o || (gemv_takes_head(p.M, p.N, p.w) && !p.head.h_in && !p.tail.counter && p.x == p.gate_head.o),
             "launch_gemv: a gate head needs one row, bf16 weights, N > 1024, x = its o, and no other head or tail");
  LING_CHECK(!p.done || (gemv_takes_head(p.M, p.N, p.w) && p.raw_bf16 && !p.tail.counter && !p.gate_head.o &&
                         p.done_group > 0 && p.done_group % 8 == 0 && p.done_period > 0 &&
                         p.done_period % p.done_group == 0 && p.done_rows > 0 && p.done_rows % 8 == 0 &&
                         p.done_rows <= p.N),
             "launch_gemv: counted rows need one row, raw bf16 weights, N > 1024, no tail or gate head, and rows, "
             "period and group that are multiples of 8 (rows ", p.done_rows, ", period ", p.done_period, ", group ",
             p.done_group, ", N ", p.N, ")");
  if (p.N == 0) return;
  if (p.w) launch_typed(p, p.w, stream);
  else launch_typed(p, p.w_f32, stream);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
