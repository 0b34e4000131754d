// MoE router on the device (moe.h, architecture.md §2.4), exactly ref::moe_route: one warp per token, expert
// e = lane + 32·i in registers (E ≤ 512). sigmoid scores (expf correctly rounded, as the host's), selection
// scores = score + bias, group score = sum of each group's top-2 selection scores, topk_group groups kept
// (descending, lower index on ties), then top-k over the kept experts (descending, lower index on ties); weights
// are the unbiased scores renormalised over the k picks (+1e-20 when k > 1) × routed_scaling_factor.
// Every arg-max is two warp reductions (redux.sync): the largest order-preserving key of the value, then the
// lowest index among the lanes holding it. Groups of 32 experts (E = 32·n_group, the Ling configs) are one
// register slot each, so their top-2 are warp reductions too; other group sizes are scanned by one lane per
// group through shared memory. In the top-k rounds each lane keeps the best of its own experts and only the
// winning lane rescans. The code is kept small (slots per lane a template: 8 for E ≤ 256; one out-of-line
// sigmoid): a decode step runs this kernel once per layer as a single warp behind gigabytes of weight traffic,
// so its instructions are likely fetched from DRAM each time; the unrolled 74 KB body took 14 µs per call on an
// H100, the same for 1 token and for 64.
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "gemv/vec.cuh"
#include "ling/kernels/moe.h"

namespace ling::kernels {
namespace {

constexpr int kWarps = 4;
constexpr unsigned kFull = 0xffffffffu;

// Order-preserving key of a float (larger float → larger key; −0 counts as +0, as `>` does).
__device__ __forceinline__ uint32_t okey(float f) {
  const uint32_t b = __float_as_uint(f + 0.0f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float ofloat(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
// The winner over the warp's candidates (key, idx): largest key, then lowest idx. Lanes without a candidate
// pass key 0 and idx 0xffffffff.
__device__ __forceinline__ uint32_t warp_argmax(uint32_t key, uint32_t idx) {
  const uint32_t mx = __reduce_max_sync(kFull, key);
  return __reduce_min_sync(kFull, key == mx ? idx : 0xffffffffu);
}

// sigmoid(x) in fp32 from the correctly rounded e^−x (double exp, then one rounding), as the host's expf.
__device__ __noinline__ float sigmoid_rn(float x) { return 1.0f / (1.0f + float(exp(-double(x)))); }

// Routing of token t by one warp (every lane calls it): st is the warp's staging row of shared memory
// (kMoeRouteMaxExperts + kMoeRouteMaxExperts / 32 floats). Logits are read through L2 (__ldcg): they may have been
// written by other CTAs of the same grid (k_moe_router).
template <int kPerLane>
__device__ __forceinline__ void route_row(const MoeRouteDevParams& p, int64_t t, float* st) {
  const int lane = threadIdx.x & 31, E = int(p.E), k = int(p.k), n_group = int(p.n_group), per = E / n_group;
  const float ninf = -INFINITY;
  const float* lg = p.logits + t * E;
  float s[kPerLane], sel[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    s[i] = 0.0f, sel[i] = ninf;
    if (e < E) {
      s[i] = sigmoid_rn(__ldcg(lg + e));
      sel[i] = s[i] + (p.bias ? p.bias[e] : 0.0f);
    }
  }
  // Group scores: lane g < n_group ends with its group's top-2 sum.
  float gscore = ninf;
  if (per == 32) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (i >= n_group) break;  // uniform
      const uint32_t key = okey(sel[i]);
      const uint32_t m1 = __reduce_max_sync(kFull, key);
      const int ties = __popc(__ballot_sync(kFull, key == m1));
      const uint32_t m2 = ties >= 2 ? m1 : __reduce_max_sync(kFull, key == m1 ? 0u : key);
      if (lane == i) gscore = ofloat(m1) + ofloat(m2);
    }
  } else {
    // expert e at e + e / 32 of st: the group scans hit distinct banks
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * i < E) st[lane + 33 * i] = sel[i];
    __syncwarp();
    if (lane < n_group) {
      float a = ninf, b = ninf;
      for (int e = lane * per; e < (lane + 1) * per; ++e) {
        const float v = st[e + (e >> 5)];
        if (v > a) b = a, a = v;
        else if (v > b) b = v;
      }
      gscore = per >= 2 ? a + b : a;
    }
  }
  unsigned kept = 0;
  for (int i = 0; i < int(p.topk_group); ++i) {
    const bool live = lane < n_group && !((kept >> lane) & 1u);
    const uint32_t g = warp_argmax(live ? okey(gscore) : 0u, live ? uint32_t(lane) : 0xffffffffu);
    kept |= 1u << g;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e < E && !((kept >> (e / per)) & 1u)) sel[i] = ninf;
  }
  // Top-k: each lane's best untaken expert (largest selection score, lowest index first), then warp rounds.
  unsigned taken = 0;
  uint32_t bkey = 0, bidx = 0xffffffffu;
  float bs = 0.0f;
  auto local_best = [&] {
    bkey = 0, bidx = 0xffffffffu, bs = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      const uint32_t key = okey(sel[j]);
      if (e < E && !((taken >> j) & 1u) && (bidx == 0xffffffffu || key > bkey)) bkey = key, bidx = uint32_t(e), bs = s[j];
    }
  };
  local_best();
  float sum = 0.0f, my_s = 0.0f;
  int32_t my_id = 0;
  for (int i = 0; i < k; ++i) {
    const uint32_t w = warp_argmax(bkey, bidx);
    const float sv = __shfl_sync(kFull, bs, int(w & 31));
    sum += sv;
    if (lane == i) my_id = int32_t(w), my_s = sv;
    if (bidx == w) {  // the winning lane takes its best and looks again
      taken |= 1u << (w >> 5);
      local_best();
    }
  }
  const float denom = k > 1 ? sum + 1e-20f : 1.0f;
  const int ld = k + (p.shared_slot ? 1 : 0);
  if (lane < k) {
    p.topk_ids[t * ld + lane] = my_id;
    p.topk_weights[t * ld + lane] = (my_s / denom) * p.routed_scaling_factor;
  } else if (lane == k && p.shared_slot) {  // the shared expert: table entry E, weight 1
    p.topk_ids[t * ld + k] = int32_t(E);
    p.topk_weights[t * ld + k] = 1.0f;
  }
}

using RouteStage = float[kMoeRouteMaxExperts + kMoeRouteMaxExperts / 32];

template <int kPerLane>
__global__ void __launch_bounds__(32 * kWarps) k_moe_route(MoeRouteDevParams p) {
  pdl_wait();
  pdl_trigger();
  __shared__ RouteStage stage[kWarps];
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= p.n) return;  // whole warps leave together
  route_row<kPerLane>(p, t, stage[threadIdx.x >> 5]);
}

// Router GEMV and routing in one launch (decode steps): CTA e computes logits[m, e] = x[m]·w_eᵀ for the M ≤ MT
// tokens exactly as the GEMV's one-CTA-per-row path (8 warps over K, sums in warp order), then the last CTA to
// finish (a counter in device memory, reset by that CTA) routes every token, a warp per token.
constexpr int kRouterWarps = 8;

template <int kPerLane, int MT>
__global__ void __launch_bounds__(32 * kRouterWarps) k_moe_router(MoeRouterParams r) {
  static_assert(kRouterWarps == 8, "block_row_dot runs 8 warps");
  __shared__ float red[kRouterWarps][MT];
  __shared__ RouteStage stage[kRouterWarps];
  __shared__ bool last;
  const int64_t e = blockIdx.x, K = r.H, ldx = r.ldx ? r.ldx : r.H;
  const int M = int(r.route.n), warp = threadIdx.x >> 5;
  const float v = block_row_dot<MT>(r.x, ldx, r.w + e * K, M, K, red, [] {
    pdl_wait();
    pdl_trigger();
  });
  if (threadIdx.x < M) r.logits[threadIdx.x * r.route.E + e] = v + 0.0f;  // + 0: the GEMV's (absent) bias
  __threadfence();  // this CTA's logits are visible device-wide before it is counted
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(r.counter, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  if (threadIdx.x == 0) *r.counter = 0;  // ready for the next launch
  __threadfence();
  for (int64_t t = warp; t < M; t += kRouterWarps) route_row<kPerLane>(r.route, t, stage[warp]);
}

}  // namespace

bool moe_route_supported(int64_t E, int64_t k, int64_t n_group, int64_t topk_group, bool shared_slot) {
  return E >= 1 && E <= kMoeRouteMaxExperts && n_group >= 1 && n_group <= 32 && E % n_group == 0 && topk_group >= 1 &&
         topk_group <= n_group && k >= 1 && k <= kMoeMaxTopK && k <= topk_group * (E / n_group) &&
         (!shared_slot || k < 32);
}

void launch_moe_route(const MoeRouteDevParams& p, cudaStream_t stream) {
  LING_CHECK(p.E >= 1 && p.E <= kMoeRouteMaxExperts, "launch_moe_route: E = ", p.E, " outside [1, ",
             kMoeRouteMaxExperts, "]");
  LING_CHECK(p.n_group >= 1 && p.n_group <= 32 && p.E % p.n_group == 0, "launch_moe_route: n_group = ", p.n_group,
             " must be in [1, 32] and divide E = ", p.E);
  LING_CHECK(p.topk_group >= 1 && p.topk_group <= p.n_group, "launch_moe_route: topk_group = ", p.topk_group,
             " outside [1, n_group = ", p.n_group, "]");
  LING_CHECK(p.k >= 1 && p.k <= kMoeMaxTopK && p.k <= p.topk_group * (p.E / p.n_group), "launch_moe_route: k = ", p.k,
             " outside [1, min(32, experts of the kept groups)]");
  LING_CHECK(!p.shared_slot || p.k < 32, "launch_moe_route: a shared-expert slot needs k < 32 (k = ", p.k, ")");
  LING_CHECK(p.n >= 0 && p.n < (int64_t(1) << 36), "launch_moe_route: n = ", p.n, " out of range");
  if (p.n == 0) return;
  LING_CHECK(p.logits && p.topk_ids && p.topk_weights, "launch_moe_route: logits, topk_ids or topk_weights is null");
  const unsigned grid = unsigned((p.n + kWarps - 1) / kWarps);
  if (p.E <= 256) launch_pdl(k_moe_route<8>, grid, 32 * kWarps, 0, stream, p);
  else launch_pdl(k_moe_route<int(kMoeRouteMaxExperts / 32)>, grid, 32 * kWarps, 0, stream, p);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_moe_router(const MoeRouterParams& r, cudaStream_t stream) {
  const MoeRouteDevParams& p = r.route;
  LING_CHECK(moe_route_supported(p.E, p.k, p.n_group, p.topk_group, p.shared_slot), "launch_moe_router: E = ", p.E,
             ", k = ", p.k, ", groups ", p.n_group, "/", p.topk_group, " not supported");
  LING_CHECK(p.n >= 0 && p.n <= kMoeRouterMaxTokens, "launch_moe_router: n = ", p.n, " outside [0, ",
             kMoeRouterMaxTokens, "]");
  if (p.n == 0) return;
  LING_CHECK(r.x && r.w && r.logits && r.counter && p.topk_ids && p.topk_weights,
             "launch_moe_router: a null x, weight, logits, counter, ids or weights pointer");
  LING_CHECK(p.logits == r.logits, "launch_moe_router: route.logits must be the logits the GEMV writes");
  const int64_t ldx = r.ldx ? r.ldx : r.H;
  LING_CHECK(r.H > 0 && r.H % 8 == 0 && ldx >= r.H && ldx % 4 == 0, "launch_moe_router: H = ", r.H, ", ldx = ", ldx,
             " (need H a positive multiple of 8, ldx >= H and a multiple of 4)");
  const auto a16 = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
  LING_CHECK(a16(r.x) && a16(r.w), "launch_moe_router: x and the router weight must be 16-byte aligned");
  const unsigned grid = unsigned(p.E);
  if (p.E <= 256) {
    if (p.n <= 4) launch_pdl(k_moe_router<8, 4>, grid, 32 * kRouterWarps, 0, stream, r);
    else launch_pdl(k_moe_router<8, kMoeRouterMaxTokens>, grid, 32 * kRouterWarps, 0, stream, r);
  } else {
    constexpr int kS = int(kMoeRouteMaxExperts / 32);
    if (p.n <= 4) launch_pdl(k_moe_router<kS, 4>, grid, 32 * kRouterWarps, 0, stream, r);
    else launch_pdl(k_moe_router<kS, kMoeRouterMaxTokens>, grid, 32 * kRouterWarps, 0, stream, r);
  }
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
