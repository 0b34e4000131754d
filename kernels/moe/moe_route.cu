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
#include <type_traits>

#include "common/check.h"
#include "common/launch.cuh"
#include "gemv/vec.cuh"
#include "ling/kernels/moe.h"
#include "ling/kernels/reduce.cuh"
#include "moe/route_row.cuh"

namespace ling::kernels {
namespace {

constexpr int kWarps = 4;

template <int kPerLane>
__global__ void __launch_bounds__(32 * kWarps) k_moe_route(MoeRouteDevParams p) {
  pdl_enter();
  __shared__ RouteStage stage[kWarps];
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= p.n) return;  // whole warps leave together
  route_row<kPerLane>(p, t, stage[threadIdx.x >> 5]);
}

// Router GEMV and routing in one launch (decode steps): CTA e computes logits[m, e] = x[m]·w_eᵀ for the M ≤ MT
// tokens exactly as the GEMV's one-CTA-per-row path (8 warps over K, sums in warp order), then the last CTA to
// finish (a counter in device memory, reset by that CTA) routes every token, a warp per token (one token: all 8
// warps, route_block).
constexpr int kRouterWarps = 8;

// The router weight rows as the kernel reads them: fp32, or bf16 (MoeRouterParams::w16; widened exactly).
template <typename T>
__device__ __forceinline__ const T* router_weights(const MoeRouterParams& r) {
  if constexpr (std::is_same_v<T, float>) return r.w;
  else return r.w16;
}

// The add + norm head's logit for one token (MoeRouterParams::head, K ≤ 2048): thread t holds columns 8t..8t+7,
// v = h + d there, and the row's fp64 sum of squares is added in k_add_rms_norm_v's order — that kernel's thread j
// holds float4 j, so this thread's two float4 (2t, 2t + 1) are its lanes j and j + 1 of one warp: the xor tree over
// j's bits 4..1 is a tree over t's bits 3..0 on each of the two, its last level (bit 0) the sum of the pair, and
// its warps' results (j = 0, 32, … = t = 0, 16, …) are added in order. Then x = (v · inv) · w in registers and the
// same dot as block_row_dot's (one step of 2,048 columns, warp sums, warps in order). CTA 0 writes x and d.
template <typename T>
__device__ __forceinline__ float head_row_dot(const MoeRouterParams& r, const T* wr, float (&red)[kRouterWarps][1],
                                              double* red_d) {
  const MoeRouterParams::AddNormHead& hd = r.head;
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int64_t K = r.H, i = int64_t(tid) * 8;
  float f[8], g[8];
  if (i < K) load8(wr + i, f), load8(hd.w + i, g);  // constants, before the wait
  pdl_enter_or_wait(r.late_trigger);
  float v[8];
  double p[2] = {0.0, 0.0};
  if (i < K) {
    const float4* h4 = reinterpret_cast<const float4*>(hd.h + i);
    const float4* d4 = reinterpret_cast<const float4*>(hd.d + i);
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const float4 a = h4[q], b = d4[q];
      v[4 * q] = a.x + b.x, v[4 * q + 1] = a.y + b.y, v[4 * q + 2] = a.z + b.z, v[4 * q + 3] = a.w + b.w;
      p[q] = double(v[4 * q]) * v[4 * q] + double(v[4 * q + 1]) * v[4 * q + 1] + double(v[4 * q + 2]) * v[4 * q + 2] +
             double(v[4 * q + 3]) * v[4 * q + 3];
      if (blockIdx.x == 0) reinterpret_cast<float4*>(hd.d_save + i)[q] = b;
    }
  }
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) {
    p[0] += __shfl_xor_sync(0xffffffffu, p[0], o);
    p[1] += __shfl_xor_sync(0xffffffffu, p[1], o);
  }
  const double pair = p[0] + p[1];
  if ((lane & 15) == 0) red_d[2 * warp + (lane >> 4)] = pair;
  __syncthreads();
  double ss = 0.0;
  for (int m = 0; m < 2 * kRouterWarps; ++m) ss += red_d[m];
  const float inv = inv_rms(ss, K, hd.eps);
  float acc[1] = {0.0f};
  if (i < K) {
    float x[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] = (v[j] * inv) * g[j];
    if (blockIdx.x == 0) {
      float4* xo = reinterpret_cast<float4*>(hd.x_out + i);
      xo[0] = make_float4(x[0], x[1], x[2], x[3]), xo[1] = make_float4(x[4], x[5], x[6], x[7]);
    }
    acc[0] += dot8_local(f, x);
  }
  return block_rows_sum<1>(acc, 1, red);
}

// T: the weights' type (float or bf16 bits). kHead: MoeRouterParams::head (one token).
template <typename T, int kPerLane, int MT, bool kHead = false>
__global__ void __launch_bounds__(32 * kRouterWarps) k_moe_router(MoeRouterParams r) {
  static_assert(kRouterWarps == 8, "block_row_dot runs 8 warps");
  __shared__ float red[kRouterWarps][MT];
  __shared__ RouteStage stage[kRouterWarps];
  __shared__ bool last;
  static_assert(kRouterWarps == kRouteWarps, "one token is routed by route_block's 8 warps");
  const int64_t e = blockIdx.x, K = r.H, ldx = r.ldx ? r.ldx : r.H;
  const int M = int(r.route.n), warp = threadIdx.x >> 5;
  // The selection biases (constant) of the one-token routing before the wait: whichever CTA routes has them in
  // registers instead of a round trip to memory after the count.
  float bias2[2] = {0.0f, 0.0f};
  if (M == 1) route_block_biases(r.route, int(threadIdx.x), bias2);
  float v;
  if constexpr (kHead) {
    static_assert(MT == 1, "the head is for one token");
    __shared__ double red_d[2 * kRouterWarps];
    v = head_row_dot<T>(r, router_weights<T>(r) + e * K, red, red_d);
  } else {
    const bool late = r.late_trigger;
    v = block_row_dot<MT>(r.x, ldx, router_weights<T>(r) + e * K, M, K, red, [late] { pdl_enter_or_wait(late); });
  }
  if (threadIdx.x < M) r.logits[threadIdx.x * r.route.E + e] = v + 0.0f;  // + 0: the GEMV's (absent) bias
  __threadfence();  // this CTA's logits are visible device-wide before it is counted
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(r.counter, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  if (r.late_trigger) pdl_trigger();  // the other CTAs exit without one: the next kernel comes in after this
  if (threadIdx.x == 0) *r.counter = 0;  // ready for the next launch
  __threadfence();
  if (M == 1) {  // one token (batch-1 decode): all 8 warps, short loops (route_block)
    float* st = &stage[0][0];  // the warps' staging rows, free here: scores, selection scores, groups, rounds
    const RouteSmem m{st, st + kMoeRouteMaxExperts, st + 2 * kMoeRouteMaxExperts,
                      reinterpret_cast<uint32_t*>(st + 2 * kMoeRouteMaxExperts + 32),
                      reinterpret_cast<unsigned*>(st + 2 * kMoeRouteMaxExperts + 32 + 4 * kRouteWarps)};
    route_block(r.route, m, bias2, r.route.topk_ids, r.route.topk_weights, [] { __syncthreads(); });
    return;
  }
  for (int64_t t = warp; t < M; t += kRouterWarps) route_row<kPerLane>(r.route, t, stage[warp]);
}

// launch_moe_router's choice of kernel for weights of type T.
template <typename T>
void launch_router_typed(const MoeRouterParams& r, cudaStream_t stream) {
  const MoeRouteDevParams& p = r.route;
  constexpr int kS = int(kMoeRouteMaxExperts / 32);
  const auto go = [&](auto kernel) { launch_pdl(kernel, unsigned(p.E), 32 * kRouterWarps, 0, stream, r); };
  if (r.head.h) {
    if (p.E <= 256) go(k_moe_router<T, 8, 1, true>);
    else go(k_moe_router<T, kS, 1, true>);
    return;
  }
  if (p.E <= 256) {
    if (p.n <= 4) go(k_moe_router<T, 8, 4>);
    else go(k_moe_router<T, 8, kMoeRouterMaxTokens>);
  } else {
    if (p.n <= 4) go(k_moe_router<T, kS, 4>);
    else go(k_moe_router<T, kS, kMoeRouterMaxTokens>);
  }
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
  const MoeRouterParams::AddNormHead& hd = r.head;
  const bool head = hd.h || hd.d || hd.w || hd.x_out || hd.d_save;
  LING_CHECK(!head || (hd.h && hd.d && hd.w && hd.x_out && hd.d_save), "launch_moe_router: the add + norm head "
             "needs h, d, w, x_out and d_save (some are null)");
  LING_CHECK(!head || (p.n == 1 && r.H <= kMoeRouterHeadMaxH), "launch_moe_router: the add + norm head is for one "
             "token and H <= ", kMoeRouterHeadMaxH, " (n = ", p.n, ", H = ", r.H, ")");
  LING_CHECK((head || r.x) && r.logits && r.counter && p.topk_ids && p.topk_weights,
             "launch_moe_router: a null x, logits, counter, ids or weights pointer");
  LING_CHECK((r.w != nullptr) != (r.w16 != nullptr), "launch_moe_router: exactly one of w (fp32) and w16 (bf16) "
             "must be set");
  LING_CHECK(p.logits == r.logits, "launch_moe_router: route.logits must be the logits the GEMV writes");
  const int64_t ldx = r.ldx ? r.ldx : r.H;
  LING_CHECK(r.H > 0 && r.H % 8 == 0 && ldx >= r.H && ldx % 4 == 0, "launch_moe_router: H = ", r.H, ", ldx = ", ldx,
             " (need H a positive multiple of 8, ldx >= H and a multiple of 4)");
  const auto a16 = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
  LING_CHECK(a16(r.x) && a16(r.w ? static_cast<const void*>(r.w) : r.w16),
             "launch_moe_router: x and the router weight must be 16-byte aligned");
  LING_CHECK(!head || (a16(hd.h) && a16(hd.d) && a16(hd.w) && a16(hd.x_out) && a16(hd.d_save)),
             "launch_moe_router: the head's h, d, w, x_out and d_save must be 16-byte aligned");
  if (r.w16) launch_router_typed<uint16_t>(r, stream);
  else launch_router_typed<float>(r, stream);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
