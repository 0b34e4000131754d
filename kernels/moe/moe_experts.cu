// Routed experts for decode-sized token counts (moe.h, architecture.md §2.4): per-expert bf16 (or fp32) weights
// reached through device arrays of pointers, expert ids and routing weights read from device memory.
// gate_up: grid (n·k slots, ⌈I/8⌉), one warp per intermediate row i: the gate row i, then the up row I + i of the
//   slot's expert (four 16-byte loads in flight per lane), act = silu(g)·u.
// down:    two passes as wide as the GEMVs: part[slot, h] = act[slot]·down_hᵀ (grid (n·k, ⌈H/8⌉), one warp per
//   output), then out[t, h] (+)= Σ_j w[t, j]·part[t·k + j, h] with j ascending (deterministic, no atomics).
// A null expert pointer contributes 0. Limits: H, I multiples of 8; x, act, weights 16-byte aligned.
#include "common/check.h"
#include "gemv/vec.cuh"
#include "ling/kernels/moe.h"

namespace ling::kernels {
namespace {

template <typename T>
__global__ void __launch_bounds__(256) k_gate_up_swiglu(MoeGateUpParams p, const T* const* table) {
  const int64_t slot = blockIdx.x, t = slot / p.k, I = p.I, H = p.H;
  const int64_t i = int64_t(blockIdx.y) * 8 + (threadIdx.x >> 5);
  if (i >= I) return;
  const T* w = table[p.ids[slot]];
  float g = 0.0f, u = 0.0f;
  if (w) {
    g = warp_dot4(p.x + t * H, w + i * H, H);
    u = warp_dot4(p.x + t * H, w + (I + i) * H, H);
  }
  if ((threadIdx.x & 31) == 0) p.act[slot * I + i] = w ? (g / (1.0f + expf(-g))) * u : 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(256) k_down_part(MoeDownParams p, const T* const* table) {
  const int64_t slot = blockIdx.x, H = p.H, I = p.I;
  const int64_t h = int64_t(blockIdx.y) * 8 + (threadIdx.x >> 5);
  if (h >= H) return;
  const T* w = table[p.ids[slot]];
  const float v = w ? warp_dot4(p.act + slot * I, w + h * I, I) : 0.0f;
  if ((threadIdx.x & 31) == 0) p.workspace[slot * H + h] = v;
}

__global__ void k_combine_parts(MoeDownParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n * p.H) return;
  const int64_t t = i / p.H, h = i % p.H;
  float acc = 0.0f;
  for (int64_t j = 0; j < p.k; ++j) acc += p.weights[t * p.k + j] * p.workspace[(t * p.k + j) * p.H + h];
  p.out[i] = p.accumulate ? p.out[i] + acc : acc;
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
  LING_CHECK((p.I + 7) / 8 < 65536, "launch_moe_gate_up_swiglu: I = ", p.I, " too large for the grid");
  const dim3 grid(unsigned(p.n * p.k), unsigned((p.I + 7) / 8));
  if (p.gate_up) k_gate_up_swiglu<<<grid, 256, 0, stream>>>(p, p.gate_up);
  else k_gate_up_swiglu<<<grid, 256, 0, stream>>>(p, p.gate_up_f32);
  LING_CUDA_CHECK(cudaGetLastError());
}

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
  const dim3 grid(unsigned(p.n * p.k), unsigned((p.H + 7) / 8));
  if (p.down) k_down_part<<<grid, 256, 0, stream>>>(p, p.down);
  else k_down_part<<<grid, 256, 0, stream>>>(p, p.down_f32);
  k_combine_parts<<<unsigned((p.n * p.H + 255) / 256), 256, 0, stream>>>(p);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
