// MoE decode kernels (architecture.md §2.4): the router on the device and the routed experts' GEMVs for small
// token counts, all sizes from params and all ids/weights from device memory (CUDA-graph safe: asynchronous on
// `stream`, no allocation, no synchronisation).
//   route:   fp32 logits [n, E] → topk_ids [n, k], topk_weights [n, k] with exactly ref::moe_route's rule.
//   gate_up: act[n·k, I] = silu(x_t·W_gateᵀ) ⊙ (x_t·W_upᵀ) per slot (t, j), expert ids[t·k + j].
//   down:    out[n, H] (+)= Σ_j w[t, j]·(act[t·k + j]·W_downᵀ), j ascending in one fixed order (no atomics),
//            through a workspace of per-slot outputs.
// Expert weights come as device arrays of per-expert pointers; a null pointer is an expert this rank does not
// hold (its slots give 0). Limits: E ≤ 512, E % n_group == 0, n_group ≤ 32, k ≤ 32; H and I multiples of 8,
// x / act / weights 16-byte aligned; written for decode (n·k up to a few hundred slots).
// Reading the weights: without a plan each slot streams its expert (an expert that k tokens route to is read k
// times); with a plan (bf16 weights) the slots are grouped by expert on the device and each expert's rows are
// read once for all its tokens, which meet them in tensor-core tiles (activations split into bf16 hi + lo, so the
// results keep fp32-activation accuracy).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ling::kernels {

constexpr int64_t kMoeRouteMaxExperts = 512;
constexpr int64_t kMoeMaxTopK = 32;

struct MoeRouteDevParams {
  const float* logits = nullptr;   // [n, E] fp32 router logits
  const float* bias = nullptr;     // [E] selection bias (e_score_correction_bias) or null
  int32_t* topk_ids = nullptr;     // [n, k], descending selection score, ties → lower index
  float* topk_weights = nullptr;   // [n, k], sigmoid scores renormalised (+1e-20 when k > 1) × scaling
  int64_t n = 0, E = 0, k = 0, n_group = 1, topk_group = 1;
  float routed_scaling_factor = 1.0f;
  // true: rows of k + 1 slots, slot k = the shared expert (id E, weight 1), so that the expert kernels run it
  // with the routed ones from tables of E + 1 entries. Needs k < 32.
  bool shared_slot = false;
};
void launch_moe_route(const MoeRouteDevParams& p, cudaStream_t stream);
// Whether launch_moe_route accepts these settings (for callers that pick a host path otherwise).
bool moe_route_supported(int64_t E, int64_t k, int64_t n_group, int64_t topk_group, bool shared_slot);

// Router GEMV and routing in one launch, for decode steps (n ≤ kMoeRouterMaxTokens): logits = x·wᵀ in fp32 (the
// GEMV's one-CTA-per-row sums, so the same logits as launch_gemv), then launch_moe_route's rule on them. counter:
// one unsigned in device memory, zero before the first launch; the launch leaves it zero. Launches on one counter
// must not overlap (one stream).
constexpr int64_t kMoeRouterMaxTokens = 16;
struct MoeRouterParams {
  MoeRouteDevParams route;    // route.logits must equal logits
  const float* x = nullptr;   // [n, H] at row stride ldx (0 = H), 16-byte aligned
  int64_t ldx = 0, H = 0;
  const float* w = nullptr;   // [E, H] fp32 router weight, 16-byte aligned
  const uint16_t* w16 = nullptr;  // or the same values in bf16 (when they are bf16 values: exactly the same
                                  // logits, half the bytes); exactly one of w / w16
  float* logits = nullptr;    // [n, E] written
  unsigned* counter = nullptr;
  // The residual add + RMSNorm that makes x, as the kernel's head (n = 1, H ≤ kMoeRouterHeadMaxH; x is then not
  // read): every CTA forms x = RMSNorm(h + d) · norm_w for the columns it multiplies — launch_add_rms_norm's
  // arithmetic bit for bit — and CTA 0 writes the whole row to x_out and d to d_save. h is not written (the
  // caller adds d_save to it later, in the reference's order). All four set or none.
  struct AddNormHead {
    const float* h = nullptr;  // [H] residual
    const float* d = nullptr;  // [H] the delta added to it
    const float* w = nullptr;  // [H] norm weight
    float* x_out = nullptr;    // [H] the normed row, written (for the expert kernels)
    float* d_save = nullptr;   // [H] a copy of d, written
    double eps = 1e-6;
  } head;
  // Programmatic launch: let the next kernel in only once the routing CTA is known (every other CTA has exited),
  // instead of at the start — so that the next kernel's early loads do not queue ahead of this one's x load, count
  // and logits reads. Scheduling only: the same results.
  bool late_trigger = false;
};
constexpr int64_t kMoeRouterHeadMaxH = 2048;
void launch_moe_router(const MoeRouterParams& r, cudaStream_t stream);

// The plan: int32 [0] the number of groups G, [1, 1 + S) the slots ordered by expert (stable), [1 + S, 2 + S + G)
// the groups' first positions in that order and S at the end; S = n·k ≤ kMoePlanMaxSlots.
constexpr int64_t kMoePlanMaxSlots = 4096;
size_t moe_plan_bytes(int64_t n, int64_t k);

struct MoeGateUpParams {
  const float* x = nullptr;                  // [n, H] token activations (row stride H)
  const int32_t* ids = nullptr;              // [n·k] expert of each slot (device), in [0, E)
  const uint16_t* const* gate_up = nullptr;  // [E] device array; each bf16 [2I, H]: rows [0, I) gate, [I, 2I) up
  const float* const* gate_up_f32 = nullptr; // or fp32 weights (exactly one of gate_up / gate_up_f32 is set)
  float* act = nullptr;                      // [n·k, I]
  int64_t n = 0, k = 0, H = 0, I = 0;
  int32_t* plan = nullptr;                   // moe_plan_bytes(n, k) of device memory or null: written here (the
                                             // grouping by expert), used with bf16 weights; pass it to down
  int32_t early_id = -1;                     // ≥ 0 (no plan, k ≥ 2): every token's last slot is this table entry
                                             // (the shared expert); its weights are loaded before the wait
  int64_t table_entries = 0;                 // > 0 (bf16, no plan): the table's first entries, requested into L2
                                             // before the wait (the entries ids may name)
  bool lean = false;                         // bf16, no plan: the per-row kernel held to 80 registers (three CTAs
                                             // per SM instead of two: fewer waves), the same sums
  bool l2_later = false;                     // bf16, no plan: each CTA of the first wave(s) also requests into L2
                                             // the rows of the CTAs that run in the later waves (a hint; the same
                                             // results)
};
void launch_moe_gate_up_swiglu(const MoeGateUpParams& p, cudaStream_t stream);

struct MoeDownParams {
  const float* act = nullptr;             // [n·k, I]
  const int32_t* ids = nullptr;           // [n·k] (device)
  const float* weights = nullptr;         // [n·k] routing weights (device)
  const uint16_t* const* down = nullptr;  // [E] device array; each bf16 [H, I]
  const float* const* down_f32 = nullptr; // or fp32 weights (exactly one of down / down_f32 is set)
  float* out = nullptr;                   // [n, H]
  int64_t n = 0, k = 0, H = 0, I = 0;
  bool accumulate = false;                // out += instead of out =
  float* workspace = nullptr;             // moe_down_workspace_bytes(n, k, H): the per-slot outputs [n·k, H]
  const int32_t* plan = nullptr;          // the plan gate_up wrote (used with bf16 weights) or null
  // true: ids were final before the kernel launched just ahead of this one in the stream began (e.g. the router
  // ran before gate_up), so under programmatic dependent launch the narrow one-pass kernel may read ids and the
  // table and start its weight loads before it waits for that kernel (act, weights and out only after).
  bool ids_ready = false;
};
size_t moe_down_workspace_bytes(int64_t n, int64_t k, int64_t H);
void launch_moe_down_combine(const MoeDownParams& p, cudaStream_t stream);

// One decode token's MoE FFN in one launch (bf16 experts): the router GEMV and routing of launch_moe_router (the
// same logits, ids and weights), gate_up + SwiGLU over every slot, then down + combine in slot order (the sums of
// the narrow down kernel), with two grid-wide barriers between the phases. One CTA per SM (all resident: the
// barriers spin); each CTA streams its share of the expert rows through a ring of shared-memory stages filled by
// bulk copies, so the copies of its down rows go out while the gate_up phase is still running elsewhere. Only
// constant data (router weights, the shared expert) is read before the programmatic-launch wait. Measured slower
// end to end than the three launches at Ring-mini dims (README); the CUDA backend uses it with
// LING_CUDA_MOE_FUSED=1.
struct MoeFusedParams {
  MoeRouterParams router;                  // route.n must be 1; route.topk_ids / topk_weights (k (+1) slots)
                                           // receive the routing when non-null; counter unused
  const uint16_t* const* gate_up = nullptr;  // [E (+1)] device table (entry E: the shared expert when shared_slot)
  const uint16_t* const* down = nullptr;     // [E (+1)]
  float* act = nullptr;                    // [slots, I] device scratch (written, read back by every CTA)
  float* out = nullptr;                    // [H]
  int64_t I = 0;
  bool accumulate = false;                 // out += instead of out =
  bool l2_gate_up = false;                 // also request the CTA's whole routed gate_up rows into L2 once routed
  unsigned* sync = nullptr;                // 2 unsigned of device memory, zero before; the launch leaves them zero.
                                           // Launches on one pair must not overlap (one stream).
  // Diagnostics (ling bench): per CTA kMoeFusedStamps globaltimer readings (ns) — start, after the
  // programmatic-launch wait, router rows done, barrier 1, routed, gate_up done, barrier 2, down done — or null.
  unsigned long long* stamps = nullptr;
};
constexpr int kMoeFusedStamps = 8;
// Whether launch_moe_fused takes these shapes on a device with `sms` SMs (else use the three launches above).
bool moe_fused_supported(int64_t H, int64_t I, int64_t E, int64_t k, int64_t n_group, int64_t topk_group,
                         bool shared_slot, int sms);
void launch_moe_fused(const MoeFusedParams& p, cudaStream_t stream);

}  // namespace ling::kernels
