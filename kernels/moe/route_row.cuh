// The device routing rule of moe_route.cu (ref::moe_route, exactly): route_row by one warp per token, and
// route_block by 8 warps for one token; shared by the routing kernels and the fused one-token MoE kernel.
// Internal linkage: each .cu gets its own copy.
#pragma once
#include <cmath>
#include <cstdint>

#include "ling/kernels/moe.h"

namespace ling::kernels {
namespace {

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

constexpr int kRouteWarps = 8;  // route_block's threads: 8 warps

struct RouteSmem {
  float *score, *sel, *group;
  uint32_t* cand;  // 32 words: the k ≤ 32 picks' scores
  unsigned* kept;
};

// route_block's bias2 for thread tid of 256: the selection biases of experts tid and tid + 256 (E ≤ 512), 0 where
// there is none.
__device__ __forceinline__ void route_block_biases(const MoeRouteDevParams& p, int tid, float (&bias2)[2]) {
  bias2[0] = bias2[1] = 0.0f;
  if (p.bias)
    for (int j = 0; j < 2 && tid + 256 * j < p.E; ++j) bias2[j] = p.bias[tid + 256 * j];
}

// ref::moe_route for one token by threads 0..255 of the CTA (the rule and tie order of route_row, in short loops:
// expert e = tid + 256j; a group of 32 experts is one warp's lanes), writing ids / weights (k (+1) slots; shared or
// global memory; the picking threads write the ids, thread 0 the weights). The top-k is a rank per kept expert:
// three barriers in all for groups of 32 (four otherwise), whatever k. bias2: this thread's selection biases of
// experts tid and tid + 256 (callers may load them early: they are constant); sync: a barrier of the 256 threads.
// Small code on purpose (see route_row): it runs once per layer.
template <typename Sync>
__device__ void route_block(const MoeRouteDevParams& p, const RouteSmem& m, const float (&bias2)[2], int32_t* ids,
                            float* wts, Sync consumers_sync) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, E = int(p.E), k = int(p.k);
  const int n_group = int(p.n_group), per = E / n_group;
#pragma unroll 1
  for (int e = tid, j = 0; e < E; e += 32 * kRouteWarps, ++j) {
    const float s = sigmoid_rn(__ldcg(p.logits + e));
    m.score[e] = s, m.sel[e] = s + (j == 0 ? bias2[0] : bias2[1]);
  }
  if (per == 32) {  // group g = experts 32g..32g+31: warp (g % 8), round g / 8
#pragma unroll 1
    for (int g = warp; g < n_group; g += kRouteWarps) {
      const uint32_t key = okey(m.sel[32 * g + lane]);
      const uint32_t m1 = __reduce_max_sync(kFull, key);
      const int ties = __popc(__ballot_sync(kFull, key == m1));
      const uint32_t m2 = ties >= 2 ? m1 : __reduce_max_sync(kFull, key == m1 ? 0u : key);
      if (lane == 0) m.group[g] = ofloat(m1) + ofloat(m2);
    }
    consumers_sync();
  } else {
    consumers_sync();
    if (tid < n_group) {
      float a = -INFINITY, b = -INFINITY;
      for (int e = tid * per; e < (tid + 1) * per; ++e) {
        const float v = m.sel[e];
        if (v > a) b = a, a = v;
        else if (v > b) b = v;
      }
      m.group[tid] = per >= 2 ? a + b : a;
    }
    consumers_sync();
  }
  if (warp == 0) {
    const float gscore = lane < n_group ? m.group[lane] : -INFINITY;
    unsigned kept = 0;
    for (int i = 0; i < int(p.topk_group); ++i) {
      const bool live = lane < n_group && !((kept >> lane) & 1u);
      kept |= 1u << warp_argmax(live ? okey(gscore) : 0u, live ? uint32_t(lane) : 0xffffffffu);
    }
    if (lane == 0) *m.kept = kept;
  }
  consumers_sync();
  const unsigned kept = *m.kept;
  // Top-k by rank: expert e of a kept group is pick number rank(e) = #{kept e' : sel(e') > sel(e), or equal keys
  // and e' < e} — the order of the rounds in route_row (largest key, then lowest index), with one barrier after it
  // instead of one per pick. The picks' scores are staged in m.cand (k ≤ 32 floats) and added in pick order by thread 0.
  float* picked = reinterpret_cast<float*>(m.cand);
#pragma unroll 1
  for (int e = tid; e < E; e += 32 * kRouteWarps) {
    if (!((kept >> (e / per)) & 1u)) continue;
    const uint32_t key = okey(m.sel[e]);
    int rank = 0;
#pragma unroll 1
    for (unsigned gs = kept; gs != 0; gs &= gs - 1) {
      const int g0 = (__ffs(gs) - 1) * per;
#pragma unroll 4
      for (int q = g0; q < g0 + per; ++q) {
        const uint32_t kq = okey(m.sel[q]);
        rank += (kq > key) | ((kq == key) & (q < e));
      }
    }
    if (rank < k) ids[rank] = int32_t(e), picked[rank] = m.score[e];
  }
  consumers_sync();
  if (tid == 0) {
    float sum = 0.0f;
    for (int i = 0; i < k; ++i) sum += picked[i];
    const float denom = k > 1 ? sum + 1e-20f : 1.0f;
    for (int i = 0; i < k; ++i) wts[i] = (picked[i] / denom) * p.routed_scaling_factor;
    if (p.shared_slot) ids[k] = int32_t(E), wts[k] = 1.0f;  // the shared expert: table entry E, weight 1
  }
}


}  // namespace
}  // namespace ling::kernels
