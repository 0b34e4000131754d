// Routed experts for decode-sized token counts (moe.h, architecture.md §2.4): per-expert bf16 (or fp32) weights
// reached through device arrays of pointers, expert ids and routing weights read from device memory.
// gate_up: grid (⌈I/8⌉, n·k slots), one warp per intermediate row i: the gate row i and the up row I + i of the
//   slot's expert (bf16: both rows' loads together as raw bits, a 2,048-wide pair in one round trip; fp32: one row
//   after the other, eight 16-byte loads in flight per lane), act = silu(g)·u. With early_id (the shared expert
//   as every token's last slot) that slot's CTAs come first and start their loads before the wait. With lean
//   (bf16) the kernel is held to three CTAs per SM (the same sums); with l2_later (bf16) each CTA also requests
//   into L2 the rows of the CTAs that run in the later waves.
// down:    two passes as wide as the GEMVs: part[slot, h] = act[slot]·down_hᵀ (grid (n·k, ⌈H/8⌉), one warp per
//   output), then out[t, h] (+)= Σ_j w[t, j]·part[t·k + j, h] with j ascending (deterministic, no atomics); for
//   narrow bf16 experts (I ≤ 512, k ≤ 16) both in one pass (k_down_combine_narrow), the same sums.
// With a plan (bf16 weights): one CTA groups the n·k slots by expert (k_plan, a stable counting order), then
//   gate_up: grid (⌈I/8⌉, groups), 8 warps splitting H, one 16-row tensor-core tile = 8 gate rows and the matching
//            8 up rows (so each lane holds gate and up of the same (row, token) and applies SwiGLU in registers),
//            the group's tokens 8 or 16 at a time (tc_tile.cuh);
//   down:    grid (⌈H/16⌉, groups), 16 rows of down per CTA over the group's act rows → part[slot, h];
//   then the same ordered combine. Grid y covers n·k possible groups; CTAs past the plan's count exit at once.
// A null expert pointer contributes 0. Limits: H, I multiples of 8; x, act, weights 16-byte aligned.
#include <type_traits>

#include "common/check.h"
#include "common/launch.cuh"
#include "gemv/tc_tile.cuh"
#include "gemv/vec.cuh"
#include "ling/kernels/launch.h"
#include "ling/kernels/moe.h"

namespace ling::kernels {
namespace {

// The slot of grid row y: with early_id ≥ 0 the y = 0..n−1 CTAs are the tokens' last slots (the shared expert, a
// constant table entry), the others follow in slot order.
__device__ __forceinline__ int64_t gate_up_slot(const MoeGateUpParams& p, int64_t y) {
  const int64_t k = p.k;
  return p.early_id < 0 ? y : y < p.n ? y * k + k - 1 : ((y - p.n) / (k - 1)) * k + (y - p.n) % (k - 1);
}

// l2_stride > 0: this CTA requests into L2 the gate and up rows of the CTAs l2_stride, 2·l2_stride, … after it in
// launch order (the later waves' rows; l2_stride = the CTAs resident at once), warp for warp, so that memory is
// busy from the first wave on and the later CTAs' loads hit L2 after their lookup of id and table. A hint only.
template <typename T>
__device__ __forceinline__ void gate_up_prefetch_later(const MoeGateUpParams& p, const T* const* table,
                                                       int64_t l2_stride) {
  const int64_t gx = gridDim.x, total = gx * gridDim.y, lin = int64_t(blockIdx.y) * gx + blockIdx.x;
  const int64_t H = p.H, I = p.I, k = p.k, row_bytes = H * int64_t(sizeof(T));
  const int64_t lane_off = int64_t(threadIdx.x & 31) * 128;
  for (int64_t q = lin + l2_stride; q < total; q += l2_stride) {
    const int64_t iq = (q % gx) * 8 + (threadIdx.x >> 5), sq = gate_up_slot(p, q / gx);
    if (iq >= I) continue;
    const T* wq = table[p.early_id >= 0 && sq % k == k - 1 ? p.early_id : p.ids[sq]];
    if (!wq) continue;
    const char* g = reinterpret_cast<const char*>(wq + iq * H);
    const char* u = reinterpret_cast<const char*>(wq + (I + iq) * H);
    for (int64_t off = lane_off; off < row_bytes; off += 32 * 128) prefetch_l2(g + off), prefetch_l2(u + off);
  }
}

// The per-row gate_up + SwiGLU (grid (⌈I/8⌉, n·k), 256 threads). kLean (bf16, MoeGateUpParams::lean, H ≤ 2,048):
// both rows' dots of a step taken together on one load of x's 8 values, in one step (warp_dot2_one_lean: the same
// sums), for a kernel held to 80 registers — three CTAs per SM instead of the two that 128 allow. kL2:
// gate_up_prefetch_later after the warp's own loads.
template <typename T, bool kLean, bool kL2>
__device__ __forceinline__ void gate_up_swiglu_rows(const MoeGateUpParams& p, const T* const* table,
                                                    int64_t l2_stride) {
  // grid (⌈I/8⌉, n·k) in gate_up_slot's order; the shared expert's CTAs load their first weights before the wait.
  const int64_t k = p.k;
  const bool early = p.early_id >= 0;
  const int64_t slot = gate_up_slot(p, blockIdx.y);
  const int64_t t = slot / k, I = p.I, H = p.H;
  const int64_t i = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const bool pre = early && slot % k == k - 1;
  float g = 0.0f, u = 0.0f;
  const T* w = std::is_same_v<T, uint16_t> && pre ? table[p.early_id] : nullptr;  // bf16: loaded before the wait
  if constexpr (std::is_same_v<T, uint16_t>) {
    Dot2Chunk<8> c;
    if (w && i < I) dot2_load(w + i * H, w + (I + i) * H, H, int64_t(threadIdx.x & 31) * 8, c);
    // The table's lines into L2 before the wait (constant data; one CTA per slot row of the grid): after it the
    // lookup behind the router's ids is an L2 hit instead of a round trip to memory.
    if (blockIdx.x == 0 && int64_t(threadIdx.x) * 16 < p.table_entries) prefetch_l2(table + threadIdx.x * 16);
    pdl_wait();
    pdl_trigger();
    if (i >= I) return;
    if (!pre) {
      w = table[p.ids[slot]];
      if (w) dot2_load(w + i * H, w + (I + i) * H, H, int64_t(threadIdx.x & 31) * 8, c);
    }
    if (kL2 && l2_stride > 0) gate_up_prefetch_later(p, table, l2_stride);  // after this warp's own loads went out
    if (w) {
      if constexpr (kLean) warp_dot2_one_lean<8>(p.x + t * H, H, c, g, u);
      else warp_dot2_from<8>(p.x + t * H, w + i * H, w + (I + i) * H, H, c, g, u);
    }
  } else {
    pdl_wait();
    pdl_trigger();
    if (i >= I) return;
    w = table[pre ? p.early_id : p.ids[slot]];
    if (w) {
      g = warp_dot<8>(p.x + t * H, w + i * H, H);
      u = warp_dot<8>(p.x + t * H, w + (I + i) * H, H);
    }
  }
  if ((threadIdx.x & 31) == 0) p.act[slot * I + i] = w ? (g / (1.0f + expf(-g))) * u : 0.0f;
}
// kL2: with gate_up_prefetch_later (a separate instantiation, so that the forms without it keep their registers).
template <typename T, bool kL2 = false>
__global__ void __launch_bounds__(256) k_gate_up_swiglu(MoeGateUpParams p, const T* const* table,
                                                        int64_t l2_stride) {
  gate_up_swiglu_rows<T, false, kL2>(p, table, l2_stride);
}
template <bool kL2 = false>
__global__ void __launch_bounds__(256, 3) k_gate_up_swiglu_lean(MoeGateUpParams p, const uint16_t* const* table,
                                                                int64_t l2_stride) {
  gate_up_swiglu_rows<uint16_t, true, kL2>(p, table, l2_stride);
}

template <typename T>
__global__ void __launch_bounds__(256) k_down_part(MoeDownParams p, const T* const* table) {
  pdl_enter();
  const int64_t slot = blockIdx.x, H = p.H, I = p.I;
  const int64_t h = int64_t(blockIdx.y) * 8 + (threadIdx.x >> 5);
  if (h >= H) return;
  const T* w = table[p.ids[slot]];
  const float v = w ? warp_dot<8>(p.act + slot * I, w + h * I, I) : 0.0f;
  if ((threadIdx.x & 31) == 0) p.workspace[slot * H + h] = v;
}

// Down projection and combine in one pass for narrow experts (bf16, I ≤ 512) and few slots (k ≤ kS): grid
// (⌈H/8⌉, n), one warp per output h of token t, the warp's loads for all k slots' rows issued together (k·2 raw
// 16-byte loads per lane: one round trip), then out[t, h] (+)= Σ_j w[t, j]·(act[t·k + j]·down_hᵀ) with j ascending
// — the same sums as k_down_part + k_combine_parts, without the workspace round trip and the second launch. With
// ids_ready the loads of ids, table and weights go out before the programmatic-launch wait.
template <int kS>
__global__ void __launch_bounds__(256, kS <= 9 ? 2 : 1)
    k_down_combine_narrow(MoeDownParams p, const uint16_t* const* table) {  // 2 CTAs per SM for k ≤ 9
  if (!p.ids_ready) {
    pdl_enter();
  }
  const int64_t t = blockIdx.y, H = p.H, I = p.I, h = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (h >= H) return;
  const int k = int(p.k), lane = int(threadIdx.x & 31);
  const int64_t i0 = int64_t(lane) * 8;
  // Lane j < k looks up slot j's expert (id then table entry, the id through L2: the buffers are reused every
  // layer), then every lane takes the k pointers by shuffles: two round trips for all slots. (Looked up slot by
  // slot, each weight load sat behind a branch on the pointer just loaded: 2k dependent round trips.)
  const uint16_t* mine = lane < k ? table[__ldcg(p.ids + t * k + lane)] : nullptr;
  const uint16_t* w[kS];
#pragma unroll
  for (int j = 0; j < kS; ++j)
    w[j] = reinterpret_cast<const uint16_t*>(__shfl_sync(0xffffffffu, reinterpret_cast<unsigned long long>(mine), j));
  uint4 raw[kS][2];
#pragma unroll
  for (int j = 0; j < kS; ++j)
#pragma unroll
    for (int c = 0; c < 2; ++c)
      if (w[j] && i0 + c * 256 < I) raw[j][c] = load_raw8(w[j] + h * I + i0 + c * 256);
  if (p.ids_ready) {  // the weights are in flight; act (and the routing weights) come from the kernels ahead
    pdl_enter();
  }
  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kS; ++j) {
    if (j >= k) break;
    float part = 0.0f;
    if (w[j]) {
      const float* a = p.act + (t * k + j) * I;
      float s = 0.0f;
#pragma unroll
      for (int c = 0; c < 2; ++c)
        if (i0 + c * 256 < I) s += dot8_raw(raw[j][c], a + i0 + c * 256);
      part = warp_sum(s);
    }
    acc += p.weights[t * k + j] * part;
  }
  if ((threadIdx.x & 31) == 0) p.out[t * H + h] = p.accumulate ? p.out[t * H + h] + acc : acc;
}

__global__ void k_combine_parts(MoeDownParams p) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n * p.H) return;
  const int64_t t = i / p.H, h = i % p.H;
  float acc = 0.0f;
  for (int64_t j = 0; j < p.k; ++j) acc += p.weights[t * p.k + j] * p.workspace[(t * p.k + j) * p.H + h];
  p.out[i] = p.accumulate ? p.out[i] + acc : acc;
}

// Stable grouping of the S slots by expert id: order = slots sorted by (id, slot), one group per distinct id.
__global__ void __launch_bounds__(1024) k_plan(const int32_t* __restrict__ ids, int S, int32_t* __restrict__ plan) {
  pdl_wait();
  pdl_trigger();
  __shared__ int32_t sid[kMoePlanMaxSlots], below[kMoePlanMaxSlots];
  __shared__ uint8_t first[kMoePlanMaxSlots];
  __shared__ int groups;
  if (threadIdx.x == 0) groups = 0;
  for (int s = threadIdx.x; s < S; s += blockDim.x) sid[s] = ids[s];
  __syncthreads();
  int32_t *order = plan + 1, *start = plan + 1 + S;
  int mine = 0;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const int32_t e = sid[s];
    int lt = 0, before = 0;
    for (int q = 0; q < S; ++q) {
      lt += sid[q] < e;
      before += (q < s) & (sid[q] == e);
    }
    order[lt + before] = s;
    below[s] = lt;
    first[s] = before == 0;
    mine += before == 0;
  }
  atomicAdd(&groups, mine);  // an integer count: the same in any order
  __syncthreads();
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    if (!first[s]) continue;
    int gi = 0;
    for (int q = 0; q < S; ++q) gi += first[q] & (sid[q] < sid[s]);
    start[gi] = below[s];
  }
  if (threadIdx.x == 0) {
    plan[0] = groups;
    start[groups] = S;
  }
}

struct Group {
  int b, count;  // first position in the plan's order, tokens
  int32_t expert;
};
__device__ __forceinline__ bool load_group(const int32_t* plan, const int32_t* ids, int S, Group& g) {
  if (int(blockIdx.y) >= plan[0]) return false;
  const int32_t* start = plan + 1 + S;
  g.b = start[blockIdx.y];
  g.count = start[blockIdx.y + 1] - g.b;
  g.expert = ids[plan[1 + g.b]];
  return true;
}

// This lane's rows of a token tile of the group: x_rows[j] = base + (slot / div)·ld for the slot at position
// m = m_lane + 8j of the group (null past its end).
template <int NT>
__device__ __forceinline__ void group_rows(const float* base, int64_t ld, int64_t div, const int32_t* order,
                                           const Group& gr, int m_lane, const float* (&x_rows)[NT]) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int m = m_lane + 8 * j;
    x_rows[j] = m < gr.count ? base + int64_t(order[gr.b + m] / div) * ld : nullptr;
  }
}

template <int NT>
__global__ void __launch_bounds__(256) k_gate_up_grouped(MoeGateUpParams p, const uint16_t* const* table) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red[8 * NT * 4 * 32];
  const int S = int(p.n * p.k);
  Group gr;
  if (!load_group(p.plan, p.ids, S, gr)) return;
  const int32_t* order = p.plan + 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t I = p.I, H = p.H, i = int64_t(blockIdx.x) * 8 + g;
  const uint16_t* w = table[gr.expert];
  const uint16_t* w_gate = w && i < I ? w + i * H : nullptr;
  const uint16_t* w_up = w && i < I ? w + (I + i) * H : nullptr;
  for (int m0 = 0; m0 < gr.count; m0 += 8 * NT) {
    const float* x_rows[NT];
    group_rows<NT>(p.x, H, p.k, order, gr, m0 + g, x_rows);  // token rows: slot / k
    float acc[NT][4] = {};
    if (w) tc_tile_accumulate<NT, NT == 1 ? 4 : 2>(w_gate, w_up, x_rows, H, warp, 8, acc);
    tc_tile_reduce8<NT>(acc, red);
    if (warp == 0 && i < I) {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int m = m0 + 8 * j + 2 * c + q;
          if (m >= gr.count) continue;
          const float ga = acc[j][q], up = acc[j][2 + q];
          p.act[int64_t(order[gr.b + m]) * I + i] = w ? (ga / (1.0f + expf(-ga))) * up : 0.0f;
        }
    }
    __syncthreads();  // red is reused by the next token tile
  }
}

template <int NT>
__global__ void __launch_bounds__(256) k_down_grouped(MoeDownParams p, const uint16_t* const* table) {
  pdl_enter();
  __shared__ float red[8 * NT * 4 * 32];
  const int S = int(p.n * p.k);
  Group gr;
  if (!load_group(p.plan, p.ids, S, gr)) return;
  const int32_t* order = p.plan + 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t I = p.I, H = p.H, h0 = int64_t(blockIdx.x) * 16;
  const uint16_t* w = table[gr.expert];
  const uint16_t* w_g = w && h0 + g < H ? w + (h0 + g) * I : nullptr;
  const uint16_t* w_g8 = w && h0 + g + 8 < H ? w + (h0 + g + 8) * I : nullptr;
  for (int m0 = 0; m0 < gr.count; m0 += 8 * NT) {
    const float* x_rows[NT];
    group_rows<NT>(p.act, I, 1, order, gr, m0 + g, x_rows);  // act rows: the slots themselves
    float acc[NT][4] = {};
    if (w) tc_tile_accumulate<NT, NT == 1 ? 4 : 2>(w_g, w_g8, x_rows, I, warp, 8, acc);
    tc_tile_reduce8<NT>(acc, red);
    if (warp == 0) {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int m = m0 + 8 * j + 2 * c + (r & 1);
          const int64_t h = h0 + g + (r >= 2 ? 8 : 0);
          if (m < gr.count && h < H) p.workspace[int64_t(order[gr.b + m]) * H + h] = acc[j][r];
        }
    }
    __syncthreads();
  }
}

void check_common(const char* who, int64_t n, int64_t k, int64_t H, int64_t I, const void* x, const void* ids,
                  const void* table, const void* out) {
  LING_CHECK(k >= 1 && k <= kMoeMaxTopK, who, ": k = ", k, " outside [1, ", kMoeMaxTopK, "]");
  LING_CHECK(n >= 0 && n * k < (int64_t(1) << 31), who, ": n = ", n, " out of range");
  LING_CHECK(H > 0 && I > 0 && H % 8 == 0 && I % 8 == 0, who, ": H = ", H, " and I = ", I,
             " must be positive multiples of 8");
  LING_CHECK(x && ids && table && out, who, ": a null input, ids, expert table or output pointer");
  LING_CHECK(aligned16(x), who, ": the activations are not 16-byte aligned");
}

}  // namespace

void launch_moe_gate_up_swiglu(const MoeGateUpParams& p, cudaStream_t stream) {
  LING_CHECK((p.gate_up != nullptr) != (p.gate_up_f32 != nullptr),
             "launch_moe_gate_up_swiglu: exactly one of gate_up (bf16) and gate_up_f32 must be set");
  check_common("launch_moe_gate_up_swiglu", p.n, p.k, p.H, p.I, p.x, p.ids,
               p.gate_up ? static_cast<const void*>(p.gate_up) : p.gate_up_f32, p.act);
  if (p.n == 0) return;
  const int64_t S = p.n * p.k;
  if (p.plan) {
    LING_CHECK(S <= kMoePlanMaxSlots, "launch_moe_gate_up_swiglu: n·k = ", S, " slots exceed the plan's ",
               kMoePlanMaxSlots);
    launch_pdl(k_plan, 1, 1024, 0, stream, p.ids, int(S), p.plan);
    if (p.gate_up) {
      const dim3 grid(unsigned((p.I + 7) / 8), unsigned(S));
      if (p.n <= 8) launch_pdl(k_gate_up_grouped<1>, grid, 256, 0, stream, p, p.gate_up);
      else launch_pdl(k_gate_up_grouped<2>, grid, 256, 0, stream, p, p.gate_up);
      LING_CUDA_CHECK(cudaGetLastError());
      return;
    }
  }
  LING_CHECK(p.early_id < 0 || p.k >= 2, "launch_moe_gate_up_swiglu: early_id needs k >= 2 (k = ", p.k, ")");
  LING_CHECK(S < 65536, "launch_moe_gate_up_swiglu: n·k = ", S, " slots too many for the grid");
  const dim3 grid(unsigned((p.I + 7) / 8), unsigned(S));
  // l2_later (bf16): the stride of the later waves = the CTAs resident at once (0: none later, or off)
  const auto stride = [&](auto kernel) -> int64_t {
    if (!p.l2_later) return 0;
    const int64_t resident = resident_ctas(reinterpret_cast<const void*>(kernel), 256);
    return resident > 0 && resident < int64_t(grid.x) * grid.y ? resident : 0;
  };
  const auto go = [&](auto kernel, const auto* table) {
    const int64_t l2 = stride(kernel);
    launch_pdl(kernel, grid, 256, 0, stream, p, table, l2);
  };
  const bool lean = p.gate_up && p.lean && p.H <= 2048;
  if (lean && p.l2_later) go(k_gate_up_swiglu_lean<true>, p.gate_up);
  else if (lean) go(k_gate_up_swiglu_lean<false>, p.gate_up);
  else if (p.gate_up && p.l2_later) go(k_gate_up_swiglu<uint16_t, true>, p.gate_up);
  else if (p.gate_up) go(k_gate_up_swiglu<uint16_t>, p.gate_up);
  else go(k_gate_up_swiglu<float>, p.gate_up_f32);
  LING_CUDA_CHECK(cudaGetLastError());
}

size_t moe_plan_bytes(int64_t n, int64_t k) { return sizeof(int32_t) * size_t(2 * n * k + 2); }

size_t moe_down_workspace_bytes(int64_t n, int64_t k, int64_t H) { return sizeof(float) * size_t(n * k * H); }

void launch_moe_down_combine(const MoeDownParams& p, cudaStream_t stream) {
  LING_CHECK((p.down != nullptr) != (p.down_f32 != nullptr),
             "launch_moe_down_combine: exactly one of down (bf16) and down_f32 must be set");
  check_common("launch_moe_down_combine", p.n, p.k, p.H, p.I, p.act, p.ids,
               p.down ? static_cast<const void*>(p.down) : p.down_f32, p.out);
  LING_CHECK(p.weights != nullptr, "launch_moe_down_combine: weights is null");
  if (p.n == 0) return;
  LING_CHECK(p.workspace != nullptr, "launch_moe_down_combine: the workspace (moe_down_workspace_bytes) is null");
  LING_CHECK((p.H + 7) / 8 < 65536, "launch_moe_down_combine: H = ", p.H, " too large for the grid");
  if (p.plan && p.down) {
    LING_CHECK(p.n * p.k <= kMoePlanMaxSlots, "launch_moe_down_combine: n·k = ", p.n * p.k,
               " slots exceed the plan's ", kMoePlanMaxSlots);
    const dim3 grid(unsigned((p.H + 15) / 16), unsigned(p.n * p.k));
    if (p.n <= 8) launch_pdl(k_down_grouped<1>, grid, 256, 0, stream, p, p.down);
    else launch_pdl(k_down_grouped<2>, grid, 256, 0, stream, p, p.down);
    launch_pdl(k_combine_parts, unsigned((p.n * p.H + 255) / 256), 256, 0, stream, p);
    LING_CUDA_CHECK(cudaGetLastError());
    return;
  }
  if (p.down && p.I <= 512 && p.k <= 16 && p.n < 65536) {  // narrow experts: one pass, no workspace
    const dim3 grid(unsigned((p.H + 7) / 8), unsigned(p.n));
    if (p.k <= 9) launch_pdl(k_down_combine_narrow<9>, grid, 256, 0, stream, p, p.down);
    else launch_pdl(k_down_combine_narrow<16>, grid, 256, 0, stream, p, p.down);
    LING_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const dim3 grid(unsigned(p.n * p.k), unsigned((p.H + 7) / 8));
  if (p.down) launch_pdl(k_down_part<uint16_t>, grid, 256, 0, stream, p, p.down);
  else launch_pdl(k_down_part<float>, grid, 256, 0, stream, p, p.down_f32);
  launch_pdl(k_combine_parts, unsigned((p.n * p.H + 255) / 256), 256, 0, stream, p);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
