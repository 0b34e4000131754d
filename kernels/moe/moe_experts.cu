// Routed experts for decode-sized token counts (moe.h, architecture.md §2.4): per-expert bf16 (or fp32) weights
// reached through device arrays of pointers, expert ids and routing weights read from device memory.
// gate_up: grid (n·k slots, ⌈I/8⌉), one warp per intermediate row i: the gate row i and the up row I + i of the
//   slot's expert streamed together (16-byte loads, four in flight per lane), act = silu(g)·u.
// down:    grid (n, ⌈H/8⌉), one warp per output h of token t: the k slots' rows h laid end to end and streamed
//   as one sequence of 8-wide chunks (four loads in flight per lane), each chunk's dot scaled by its slot's
//   weight; the lane sums and then the warp sum run in one fixed order (deterministic, no atomics).
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
  const int lane = threadIdx.x & 31;
  const T* w = table[p.ids[slot]];
  float g = 0.0f, u = 0.0f;
  if (w) {
    const T* wg = w + i * H;
    const T* wu = w + (I + i) * H;
    const float* xs = p.x + t * H;
    int64_t c = int64_t(lane) * 8;
    for (; c + 256 < H; c += 512) {
      float fg[2][8], fu[2][8];
      load8(wg + c, fg[0]), load8(wg + c + 256, fg[1]), load8(wu + c, fu[0]), load8(wu + c + 256, fu[1]);
      g += dot8(fg[0], xs + c), u += dot8(fu[0], xs + c);
      g += dot8(fg[1], xs + c + 256), u += dot8(fu[1], xs + c + 256);
    }
    for (; c < H; c += 256) {
      float fg[8], fu[8];
      load8(wg + c, fg), load8(wu + c, fu);
      g += dot8(fg, xs + c), u += dot8(fu, xs + c);
    }
    g = warp_sum(g), u = warp_sum(u);
  }
  if (lane == 0) p.act[slot * I + i] = w ? (g / (1.0f + expf(-g))) * u : 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(256) k_down_combine(MoeDownParams p, const T* const* table) {
  __shared__ const T* ptr[kMoeMaxTopK];
  __shared__ float wt[kMoeMaxTopK];
  const int64_t t = blockIdx.x, H = p.H, I = p.I;
  const int k = int(p.k);
  if (threadIdx.x < k) {
    ptr[threadIdx.x] = table[p.ids[t * k + threadIdx.x]];
    wt[threadIdx.x] = p.weights[t * k + threadIdx.x];
  }
  __syncthreads();
  const int64_t h = int64_t(blockIdx.y) * 8 + (threadIdx.x >> 5);
  if (h >= H) return;
  const int lane = threadIdx.x & 31;
  const int64_t C = I / 8, total = C * k;  // 8-wide chunks of the k rows h, slot-major
  const float* act = p.act + t * k * I;
  constexpr int U = 4;
  float acc = 0.0f;
  for (int64_t base = lane; base < total; base += 32 * U) {
    float f[U][8];
    int j[U];
    int64_t off[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = base + 32 * u;
      j[u] = c < total ? int(c / C) : -1;
      off[u] = c < total ? (c - int64_t(j[u]) * C) * 8 : 0;
      const T* w = j[u] >= 0 ? ptr[j[u]] : nullptr;
      if (w) load8(w + h * I + off[u], f[u]);
      else j[u] = -1;
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (j[u] >= 0) acc += wt[j[u]] * dot8(f[u], act + int64_t(j[u]) * I + off[u]);
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    float* o = p.out + t * H + h;
    *o = p.accumulate ? *o + acc : acc;
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
  LING_CHECK((p.I + 7) / 8 < 65536, "launch_moe_gate_up_swiglu: I = ", p.I, " too large for the grid");
  const dim3 grid(unsigned(p.n * p.k), unsigned((p.I + 7) / 8));
  if (p.gate_up) k_gate_up_swiglu<<<grid, 256, 0, stream>>>(p, p.gate_up);
  else k_gate_up_swiglu<<<grid, 256, 0, stream>>>(p, p.gate_up_f32);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_moe_down_combine(const MoeDownParams& p, cudaStream_t stream) {
  LING_CHECK((p.down != nullptr) != (p.down_f32 != nullptr),
             "launch_moe_down_combine: exactly one of down (bf16) and down_f32 must be set");
  check_common("launch_moe_down_combine", p.n, p.k, p.H, p.I, p.act, p.ids,
               p.down ? static_cast<const void*>(p.down) : p.down_f32, p.out);
  LING_CHECK(p.weights != nullptr, "launch_moe_down_combine: weights is null");
  if (p.n == 0) return;
  LING_CHECK((p.H + 7) / 8 < 65536, "launch_moe_down_combine: H = ", p.H, " too large for the grid");
  const dim3 grid(unsigned(p.n), unsigned((p.H + 7) / 8));
  if (p.down) k_down_combine<<<grid, 256, 0, stream>>>(p, p.down);
  else k_down_combine<<<grid, 256, 0, stream>>>(p, p.down_f32);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
