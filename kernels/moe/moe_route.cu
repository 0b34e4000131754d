// MoE router on the device (moe.h, architecture.md §2.4), exactly ref::moe_route: one warp per token, expert
// e = lane + 32·i in registers (E ≤ 512). sigmoid scores (expf correctly rounded, as the host's), selection
// scores = score + bias, group score = sum of each group's top-2 selection scores (scanned in index order by
// one lane per group through shared memory), topk_group groups kept (descending, lower index on ties), then
// top-k over the kept experts by warp arg-max rounds (descending, lower index on ties); weights are the
// unbiased scores renormalised over the k picks (+1e-20 when k > 1) × routed_scaling_factor.
#include <cmath>

#include "common/check.h"
#include "ling/kernels/moe.h"

namespace ling::kernels {
namespace {

constexpr int kPerLane = int(kMoeRouteMaxExperts / 32);
constexpr int kWarps = 4;

__device__ __forceinline__ void argmax_shfl(float& best, int& bi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
}

__global__ void __launch_bounds__(32 * kWarps) k_moe_route(MoeRouteDevParams p) {
  __shared__ float stage[kWarps][kMoeRouteMaxExperts];
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= p.n) return;  // whole warps leave together
  const int lane = threadIdx.x & 31, E = int(p.E), k = int(p.k), n_group = int(p.n_group);
  const float ninf = -INFINITY;
  const float* lg = p.logits + t * E;
  float s[kPerLane], sel[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    s[i] = 0.0f, sel[i] = ninf;
    if (e < E) {
      s[i] = 1.0f / (1.0f + float(exp(-double(lg[e]))));
      sel[i] = s[i] + (p.bias ? p.bias[e] : 0.0f);
    }
  }
  float* st = stage[threadIdx.x >> 5];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * i < E) st[lane + 32 * i] = sel[i];
  __syncwarp();
  const int per = E / n_group;
  float gscore = ninf;
  if (lane < n_group) {
    float a = ninf, b = ninf;
    for (int e = lane * per; e < (lane + 1) * per; ++e) {
      const float v = st[e];
      if (v > a) b = a, a = v;
      else if (v > b) b = v;
    }
    gscore = per >= 2 ? a + b : a;
  }
  unsigned kept = 0;
  for (int i = 0; i < int(p.topk_group); ++i) {
    const bool live = lane < n_group && !((kept >> lane) & 1u);
    float best = live ? gscore : ninf;
    int bi = live ? lane : 1 << 30;
    argmax_shfl(best, bi);
    if (bi < 32) kept |= 1u << bi;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e < E && !((kept >> (e / per)) & 1u)) sel[i] = ninf;
  }
  unsigned taken = 0;
  float sum = 0.0f, my_s = 0.0f;
  int32_t my_id = 0;
  for (int i = 0; i < k; ++i) {
    float best = ninf;
    int bi = 1 << 30;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      if (e < E && !((taken >> j) & 1u) && (sel[j] > best || (sel[j] == best && e < bi))) best = sel[j], bi = e;
    }
    argmax_shfl(best, bi);
    if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
    float mine = 0.0f;  // the winner's unbiased score, from its lane's registers
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      if (j == (bi >> 5)) mine = s[j];
    const float sv = __shfl_sync(0xffffffffu, mine, bi & 31);
    sum += sv;
    if (lane == i) my_id = bi, my_s = sv;
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
  k_moe_route<<<unsigned((p.n + kWarps - 1) / kWarps), 32 * kWarps, 0, stream>>>(p);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
