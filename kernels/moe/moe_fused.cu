// One decode token's MoE FFN in one launch (moe.h, MoeFusedParams), for bf16 experts: a CTA per SM (8 consumer
// warps + 1 producer warp), all resident, three phases separated by grid-wide barriers of the consumer warps (a
// counter in device memory, reset by the last CTA to leave):
//   router:  CTA c computes logits of experts [E·c/G, E·(c+1)/G) with the sums of launch_moe_router (thread t:
//            elements 8t + 2048j, then the 8 warps in order; the first weights loaded before the wait); barrier;
//            every CTA then routes the token itself (route_block: ref::moe_route's rule and tie order, one expert
//            per thread, short loops) — no second barrier for the ids.
//   gate_up: each CTA takes 1/G of the shared expert's pairs (slot k, known before routing) and 1/G of the routed
//            slots' flat (slot, i) pairs; a stage is up to R pairs of one slot (the gate rows, then the up rows: two
//            bulk copies). Each consumer warp owns one row of a stage and 1/parts of its columns (2R·parts = 8),
//            its slice of x in registers; g and u per pair meet in shared memory in part order; act = silu(g)·u
//            goes to the device scratch; barrier.
//   down:    rows [H·c/G, H·(c+1)/G) of every slot's down matrix (DS slots per stage, contiguous blocks), act
//            from shared memory; out[h] (+)= Σ_j w_j·(act_j·down_j[h]) with j ascending and the per-row sums of the
//            narrow down kernel (moe_experts.cu), so the same combine given the same act.
// The producer warp keeps a ring of kStages 32 KB stages full with cp.async.bulk copies completing on "full"
// mbarriers; the consumer warps release a stage on its "empty" mbarrier. The shared expert's first stages go out
// before the programmatic-launch wait (constant data); once routed, the producer requests the CTA's down rows of
// every slot into L2 (and with l2_gate_up its routed gate_up rows), then issues the gate_up and down stages in
// order, so the down copies leave as soon as ring stages free up. Null table entries (experts not held) give 0,
// as in the three-launch path. Optional per-CTA globaltimer stamps at the phase boundaries (ling bench rows,
// LING_CUDA_MOE_STAMPS).
#include <algorithm>

#include "common/check.h"
#include "common/launch.cuh"
#include "common/mbarrier.cuh"
#include "common/wgmma.cuh"
#include "gemv/vec.cuh"
#include "ling/kernels/moe.h"
#include "moe/route_row.cuh"

namespace ling::kernels {
namespace {

constexpr int kConsumers = 8;                  // warps 0..7 compute; warp 8 is the producer
constexpr int kThreads = 32 * (kConsumers + 1);
constexpr int kStageBytes = 32768;
constexpr int kStages = 5;
constexpr int kMaxDownRows = 32;               // 4 per consumer warp
constexpr int kMaxActBytes = 65536;
constexpr int kMaxSlots = int(kMoeMaxTopK) + 1;
constexpr int kRouterPrefetch = 4;             // router rows per CTA whose first weights go out before the wait
constexpr int kConsumerBarrier = 1;            // named barrier of the consumer warps

// Shared memory: ring | full / empty mbarriers | router red [8] | ids | weights | routing (scores, selection
// scores, group scores, round candidates, kept groups) | act | g / u
constexpr int kOffBars = kStages * kStageBytes;
constexpr int kOffRouterRed = kOffBars + 2 * kStages * 8;
constexpr int kOffIds = kOffRouterRed + 8 * 4;
constexpr int kOffWts = kOffIds + kMaxSlots * 4;
constexpr int kOffScore = (kOffWts + kMaxSlots * 4 + 15) / 16 * 16;  // also the producer's pointers
constexpr int kOffSel = kOffScore + int(kMoeRouteMaxExperts) * 4;
constexpr int kOffGroup = kOffSel + int(kMoeRouteMaxExperts) * 4;
constexpr int kOffCand = kOffGroup + 32 * 4;
constexpr int kOffKept = kOffCand + 2 * kConsumers * 8;
constexpr int kOffAct = (kOffKept + 4 + 15) / 16 * 16;

// Pairs per gate_up stage: the largest power of two ≤ 4 whose 2R rows of H bf16 fit a stage (0: H too wide).
int pairs_per_stage(int64_t H) {
  const int64_t r = kStageBytes / (4 * H);
  return r >= 4 ? 4 : r >= 2 ? 2 : int(r);
}

__device__ __forceinline__ void consumers_sync() { named_barrier_sync(kConsumerBarrier, 32 * kConsumers); }

// Grid-wide barrier of the consumer warps: the CTA's arrival on ctr, then a wait for `target` arrivals (b·gridDim
// for the b-th barrier of a launch). What the consumers of any CTA wrote before it is visible to them after it.
__device__ __forceinline__ void grid_barrier(unsigned* ctr, unsigned target) {
  consumers_sync();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(ctr, 1u);
    unsigned v;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(ctr) : "memory");
    } while (v < target);
  }
  consumers_sync();
}

// This CTA's work: gate_up pairs — first [s0, s1) of the shared expert's slot (slot k, known before routing),
// then [q0, q1) of the routed slots' flat slot·I + i order — and down rows [h0, h1); R pairs per gate_up stage,
// DS slots per down stage.
struct Work {
  int H, I, k, s0, s1, q0, q1, h0, h1, slots, R, DS;
};

// A cursor over the CTA's gate_up stages (never straddling a slot): t counts the CTA's pairs so far.
struct Pairs {
  int q, t;
  bool shared;
  __device__ explicit Pairs(const Work& w) : q(w.s0), t(0), shared(true) {}
  // The next stage (slot, first row i, np pairs), or false when there are none left.
  __device__ bool next(const Work& w, int& slot, int& i, int& np) {
    if (shared && q >= w.s1) shared = false, q = w.q0;
    if (shared) {
      slot = w.k, i = q, np = min(w.R, w.s1 - q);
      return true;
    }
    if (q >= w.q1) return false;
    slot = q / w.I, i = q - slot * w.I, np = min(w.R, min(w.I - i, w.q1 - q));
    return true;
  }
  __device__ void advance(int np) { q += np, t += np; }
};

// The producer (lane 0 of warp kConsumers): stage n into ring buffer n % kStages once the consumers have released
// its previous use (or false, without waiting, when `wait` is false and it is in use).
struct Producer {
  unsigned n = 0;
  __device__ bool begin(uint64_t* empty, bool wait) {
    if (n >= kStages) {
      if (!wait) return false;
      mbar_wait(&empty[n % kStages], ((n / kStages) + 1) & 1);
    }
    return true;
  }
  // np gate rows from row i of expert e, then its np up rows (nothing for an expert not held).
  __device__ void gate_up(const Work& w, const uint16_t* e, int i, int np, unsigned char* ring, uint64_t* full) {
    uint64_t* bar = &full[n % kStages];
    unsigned char* dst = ring + (n % kStages) * kStageBytes;
    const unsigned bytes = unsigned(np * w.H * 2);
    if (e) {
      mbar_expect_tx(bar, 2 * bytes);
      bulk_load(dst, e + size_t(i) * w.H, bytes, bar);
      bulk_load(dst + bytes, e + size_t(w.I + i) * w.H, bytes, bar);
    } else {
      mbar_arrive(bar);
    }
    ++n;
  }
  // Rows [h0, h1) of slots [j0, j1)'s down matrices (dn: their expert pointers), one block after the other.
  __device__ void down(const Work& w, const uint16_t* const* dn, int j0, int j1, unsigned char* ring, uint64_t* full) {
    uint64_t* bar = &full[n % kStages];
    unsigned char* dst = ring + (n % kStages) * kStageBytes;
    const unsigned block = unsigned((w.h1 - w.h0) * w.I * 2);
    unsigned bytes = 0;
    for (int j = j0; j < j1; ++j) bytes += dn[j] ? block : 0;
    mbar_expect_tx(bar, bytes);
    for (int j = j0; j < j1; ++j)
      if (dn[j]) bulk_load(dst + (j - j0) * block, dn[j] + size_t(w.h0) * w.I, block, bar);
    ++n;
  }
};

// KU: 256-column steps of a consumer warp's slice of x (⌈H / parts / 256⌉, rounded up to a power of two).
template <int KU>
__global__ void __launch_bounds__(kThreads, 1) k_moe_fused(const MoeFusedParams p, int R, int DS) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* ring = smem;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kOffBars);
  uint64_t* empty = full + kStages;
  float* router_red = reinterpret_cast<float*>(smem + kOffRouterRed);
  int32_t* ids_s = reinterpret_cast<int32_t*>(smem + kOffIds);
  float* wts_s = reinterpret_cast<float*>(smem + kOffWts);
  static_assert(kConsumers == kRouteWarps, "route_block runs on the consumer warps");
  const RouteSmem route{reinterpret_cast<float*>(smem + kOffScore), reinterpret_cast<float*>(smem + kOffSel),
                        reinterpret_cast<float*>(smem + kOffGroup), reinterpret_cast<uint32_t*>(smem + kOffCand),
                        reinterpret_cast<unsigned*>(smem + kOffKept)};
  float* act_s = reinterpret_cast<float*>(smem + kOffAct);

  const MoeRouteDevParams& rt = p.router.route;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int G = gridDim.x, c = blockIdx.x;
  const int H = int(p.router.H), I = int(p.I), E = int(rt.E);  // one token: x is row 0 (ldx unused)
  const int k = int(rt.k), slots = k + (rt.shared_slot ? 1 : 0), P = slots * I, Is = rt.shared_slot ? I : 0;
  const Work w{H, I, k, Is * c / G, Is * (c + 1) / G, k * I * c / G, k * I * (c + 1) / G, H * c / G, H * (c + 1) / G,
               slots, R, DS};
  float* gu_s = act_s + P;  // [pairs of this CTA][gate, up][parts]
  const int parts = 8 / (2 * R);

  const auto stamp = [&](int i) {
    if (p.stamps && tid == 0) {
      unsigned long long t;
      asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
      p.stamps[c * kMoeFusedStamps + i] = t;
    }
  };
  stamp(0);
  Producer pr;
  if (warp == kConsumers && lane == 0) {  // barriers, then the shared expert's first stages (constant weights)
    for (int s = 0; s < kStages; ++s) mbar_init(&full[s], 1), mbar_init(&empty[s], kConsumers);
    mbar_init_fence();
    if (rt.shared_slot) {
      const uint16_t* e = p.gate_up[E];
      Pairs c(w);
      int slot, i, np;
      while (c.shared && c.next(w, slot, i, np) && c.shared && pr.begin(empty, false)) {
        pr.gate_up(w, e, i, np, ring, full);
        c.advance(np);
      }
    }
  }
  // Router rows [e0, e1): the sums of launch_moe_router (thread t: elements 8t + 2048j, warp sums, then the 8
  // warps in order); the first 2,048 weights of up to kRouterPrefetch rows are loaded before the wait.
  const int e0 = E * c / G, e1 = E * (c + 1) / G;
  float bias2[2] = {0.0f, 0.0f};  // E ≤ 512 = 2 experts per consumer thread
  if (warp < kConsumers) route_block_biases(rt, tid, bias2);
  if (warp < kConsumers) {
    float f0[kRouterPrefetch][8];
    const int i0 = tid * 8;
#pragma unroll
    for (int r = 0; r < kRouterPrefetch; ++r)
      if (e0 + r < e1 && i0 < H) load8(p.router.w + size_t(e0 + r) * H + i0, f0[r]);
    pdl_enter();
    stamp(1);
    for (int e = e0; e < e1; ++e) {
      const float* wr = p.router.w + size_t(e) * H;
      float acc = 0.0f;
      for (int i = i0; i < H; i += 2048) {
        float f[8];
        const int r = e - e0;
        if (i == i0 && r < kRouterPrefetch) {
#pragma unroll
          for (int q = 0; q < kRouterPrefetch; ++q)
            if (q == r)
#pragma unroll
              for (int j = 0; j < 8; ++j) f[j] = f0[q][j];
        } else {
          load8(wr + i, f);
        }
        acc += dot8(f, p.router.x + i);
      }
      acc = warp_sum(acc);
      if (lane == 0) router_red[warp] = acc;
      consumers_sync();
      if (tid == 0) {
        float v = 0.0f;
        for (int q = 0; q < 8; ++q) v += router_red[q];
        p.router.logits[e] = v + 0.0f;  // + 0: the GEMV's (absent) bias, as launch_moe_router
      }
      consumers_sync();  // router_red is reused by the next row
    }
  } else {
    pdl_enter();
  }
  stamp(2);
  if (warp < kConsumers) grid_barrier(p.sync, unsigned(G));
  stamp(3);
  if (warp < kConsumers)  // every CTA routes the token (logits via L2)
    route_block(rt, route, bias2, ids_s, wts_s, [] { consumers_sync(); });
  __syncthreads();  // ids in shared memory; the barriers initialised
  stamp(4);
  if (c == 0 && tid < slots && rt.topk_ids) rt.topk_ids[tid] = ids_s[tid], rt.topk_weights[tid] = wts_s[tid];
  if (warp == kConsumers) {  // the producer: the remaining gate_up stages, then the down stages
    const uint16_t** gp = reinterpret_cast<const uint16_t**>(route.score);  // routing scratch, free now
    const uint16_t** dp = gp + kMaxSlots;
    for (int j = lane; j < slots; j += 32) {
      gp[j] = p.gate_up[ids_s[j]], dp[j] = p.down[ids_s[j]];
      // This CTA's down rows of every slot into L2 now: their address translations (nine experts) and reads
      // overlap the gate_up phase instead of following one another after the second barrier.
      if (dp[j] && w.h1 > w.h0) bulk_prefetch_l2(dp[j] + size_t(w.h0) * I, unsigned((w.h1 - w.h0) * I * 2));
    }
    if (p.l2_gate_up)  // lane s: routed slot s's rows of this CTA (gate, then up), in 64 KB pieces
      for (int slot = w.q0 / I + lane; w.q1 > w.q0 && slot <= (w.q1 - 1) / I; slot += 32) {
        const int i0 = max(w.q0, slot * I) - slot * I, i1 = min(w.q1, (slot + 1) * I) - slot * I;
        if (!gp[slot]) continue;
        for (int half = 0; half < 2; ++half) {
          const char* a = reinterpret_cast<const char*>(gp[slot] + size_t(half * I + i0) * H);
          for (size_t off = 0, n = size_t(i1 - i0) * H * 2; off < n; off += 65536)
            bulk_prefetch_l2(a + off, unsigned(std::min<size_t>(65536, n - off)));
        }
      }
    __syncwarp();
    if (lane != 0) return;
    Pairs c(w);
    for (unsigned skip = pr.n; skip > 0;) {  // the stages issued before routing
      int slot, i, np;
      c.next(w, slot, i, np);
      c.advance(np);
      --skip;
    }
    int slot, i, np;
    while (c.next(w, slot, i, np)) {
      pr.begin(empty, true);
      pr.gate_up(w, gp[slot], i, np, ring, full);
      c.advance(np);
    }
    if (w.h1 > w.h0)
      for (int j0 = 0; j0 < slots; j0 += DS) {
        pr.begin(empty, true);
        pr.down(w, dp, j0, min(slots, j0 + DS), ring, full);
      }
    return;
  }

  // Which slots' experts are held (bit j: gate_up / down of slot j non-null), one parallel load per lane: a
  // table read per stage would put a dependent round trip to memory (the table leaves L2 between layers) in
  // front of every stage.
  const unsigned gate_held = __ballot_sync(kFull, lane < slots && p.gate_up[ids_s[lane < slots ? lane : 0]]);
  const unsigned down_held = __ballot_sync(kFull, lane < slots && p.down[ids_s[lane < slots ? lane : 0]]);
  // gate_up: consumer warp → (row of the stage, column part), its slice of x in registers.
  const int part = warp % parts, row = warp / parts;
  const int Kp = H / parts;
  float xr[KU][8];
#pragma unroll
  for (int u = 0; u < KU; ++u) {
    const int col = lane * 8 + 256 * u;
#pragma unroll
    for (int j = 0; j < 8; ++j) xr[u][j] = col < Kp ? p.router.x[part * Kp + col + j] : 0.0f;
  }
  unsigned n = 0;
  Pairs cur(w);
  for (int slot, i, np; cur.next(w, slot, i, np); ++n) {
    const unsigned b = n % kStages;
    mbar_wait(&full[b], (n / kStages) & 1);
    const bool gate = row < R, live = gate ? row < np : row - R < np;
    if (live && ((gate_held >> slot) & 1u)) {
      const int r_s = gate ? row : np + (row - R);  // the stage holds np gate rows, then np up rows
      const uint16_t* wr = reinterpret_cast<const uint16_t*>(ring + b * kStageBytes) + r_s * H + part * Kp;
      float acc = 0.0f;
#pragma unroll
      for (int u = 0; u < KU; ++u) {
        const int col = lane * 8 + 256 * u;
        if (col < Kp) {
          float f[8];
          unpack8(*reinterpret_cast<const uint4*>(wr + col), f);
          acc += dot8_local(f, xr[u]);
        }
      }
      acc = warp_sum(acc);
      if (lane == 0) gu_s[((cur.t + (gate ? row : row - R)) * 2 + (gate ? 0 : 1)) * parts + part] = acc;
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[b]);
    cur.advance(np);
  }
  consumers_sync();  // every g and u of the CTA's pairs in
  stamp(5);
  const int ns = w.s1 - w.s0;  // the CTA's pairs: ns of the shared slot, then the routed ones
  for (int t = tid; t < cur.t; t += 32 * kConsumers) {
    const int q = t < ns ? k * I + w.s0 + t : w.q0 + (t - ns);  // slot·I + i
    float g = 0.0f, u = 0.0f;
    const bool held = (gate_held >> (q / I)) & 1u;
    if (held)
      for (int pt = 0; pt < parts; ++pt) g += gu_s[(t * 2) * parts + pt], u += gu_s[(t * 2 + 1) * parts + pt];
    p.act[q] = held ? (g / (1.0f + expf(-g))) * u : 0.0f;
  }
  grid_barrier(p.sync, unsigned(2 * G));
  stamp(6);

  // down + combine over rows [h0, h1): consumer warp → rows warp + 8·r; slot j of a stage at block j − j0.
  // act → shared memory, eight 16-byte loads in flight per thread (P is a multiple of 8)
  for (int x0 = 4 * tid; x0 < P; x0 += 8 * 4 * 32 * kConsumers) {
    float4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (x0 + u * 4 * 32 * kConsumers < P) v[u] = __ldcg(reinterpret_cast<const float4*>(p.act + x0 + u * 4 * 32 * kConsumers));
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (x0 + u * 4 * 32 * kConsumers < P) *reinterpret_cast<float4*>(act_s + x0 + u * 4 * 32 * kConsumers) = v[u];
  }
  consumers_sync();
  const int nh = int(w.h1 - w.h0);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int j0 = 0; j0 < slots && nh > 0; j0 += DS, ++n) {
    const unsigned b = n % kStages;
    mbar_wait(&full[b], (n / kStages) & 1);
#pragma unroll 1
    for (int j = j0; j < min(slots, j0 + DS); ++j) {
      const uint16_t* wd = reinterpret_cast<const uint16_t*>(ring + b * kStageBytes) + (j - j0) * nh * I;
      const bool held = (down_held >> j) & 1u;
      const float* a = act_s + j * I;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int h = warp + 8 * r;
        if (h >= nh) break;
        float part_sum = 0.0f;
        if (held) {
          float s = 0.0f;
#pragma unroll 1
          for (int col = lane * 8; col < I; col += 256) {
            float f[8];
            unpack8(*reinterpret_cast<const uint4*>(wd + h * I + col), f);
            s += dot8_local(f, a + col);
          }
          part_sum = warp_sum(s);
        }
        acc[r] += wts_s[j] * part_sum;
      }
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[b]);
  }
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int h = warp + 8 * r;
      if (h >= nh) break;
      float* o = p.out + w.h0 + h;
      *o = p.accumulate ? *o + acc[r] : acc[r];
    }
  stamp(7);
  // The last CTA out resets the counters (every CTA has passed both barriers by then).
  if (tid == 0 && atomicAdd(p.sync + 1, 1u) == unsigned(G - 1)) p.sync[0] = 0, p.sync[1] = 0;
}

template <int KU>
void launch_ku(const MoeFusedParams& p, int R, int DS, int G, size_t smem, cudaStream_t s) {
  set_max_dynamic_smem(k_moe_fused<KU>, int(smem));
  launch_pdl(k_moe_fused<KU>, unsigned(G), kThreads, smem, s, p, R, DS);
}

}  // namespace

bool moe_fused_supported(int64_t H, int64_t I, int64_t E, int64_t k, int64_t n_group, int64_t topk_group,
                         bool shared_slot, int sms) {
  if (!moe_route_supported(E, k, n_group, topk_group, shared_slot)) return false;
  if (H <= 0 || I <= 0 || H % 8 || I % 8 || sms <= 0) return false;
  const int R = pairs_per_stage(H);
  if (R == 0) return false;
  const int parts = 8 / (2 * R);
  if (H % (8 * parts) || H / parts > 8 * 256) return false;
  const int64_t nh = (H + sms - 1) / sms, slots = k + (shared_slot ? 1 : 0);
  const int64_t pairs = (I + sms - 1) / sms + (k * I + sms - 1) / sms;
  return nh <= kMaxDownRows && nh * I * 2 <= kStageBytes && slots * I * 4 <= kMaxActBytes &&
         size_t(kOffAct) + size_t(slots * I + 2 * pairs * parts) * sizeof(float) <= 227 * 1024;
}

void launch_moe_fused(const MoeFusedParams& p, cudaStream_t stream) {
  const MoeRouteDevParams& rt = p.router.route;
  const int sms = device_sm_count();
  const int64_t H = p.router.H, I = p.I;
  LING_CHECK(moe_fused_supported(H, I, rt.E, rt.k, rt.n_group, rt.topk_group, rt.shared_slot, sms),
             "launch_moe_fused: H = ", H, ", I = ", I, ", E = ", rt.E, ", k = ", rt.k, " not supported on ", sms, " SMs");
  LING_CHECK(rt.n == 1, "launch_moe_fused: one token only (route.n = ", rt.n, ")");
  LING_CHECK(!p.router.w16, "launch_moe_fused: fp32 router weights only");
  LING_CHECK(p.router.x && p.router.w && p.router.logits && p.gate_up && p.down && p.act && p.out && p.sync,
             "launch_moe_fused: a null x, router weight, logits, table, act, out or sync pointer");
  LING_CHECK(rt.logits == p.router.logits, "launch_moe_fused: route.logits must be the logits the GEMV writes");
  const int64_t ldx = p.router.ldx ? p.router.ldx : H;
  LING_CHECK(ldx >= H && ldx % 4 == 0, "launch_moe_fused: ldx = ", ldx, " (need >= H and a multiple of 4)");
  LING_CHECK(aligned16(p.router.x) && aligned16(p.router.w) && aligned16(p.act),
             "launch_moe_fused: x, the router weight and act must be 16-byte aligned");
  const int R = pairs_per_stage(H), parts = 8 / (2 * R);
  const int64_t steps = (H / parts + 255) / 256;
  const int64_t slots = rt.k + (rt.shared_slot ? 1 : 0), nh = (H + sms - 1) / sms;
  const int DS = int(std::min<int64_t>(slots, kStageBytes / (nh * I * 2)));
  const int64_t pairs = (I + sms - 1) / sms + (rt.k * I + sms - 1) / sms;  // the most pairs a CTA gets
  const size_t smem = size_t(kOffAct) + size_t(slots * I + 2 * pairs * parts) * sizeof(float);
  if (steps <= 1) launch_ku<1>(p, R, DS, sms, smem, stream);
  else if (steps <= 2) launch_ku<2>(p, R, DS, sms, smem, stream);
  else if (steps <= 4) launch_ku<4>(p, R, DS, sms, smem, stream);
  else launch_ku<8>(p, R, DS, sms, smem, stream);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
