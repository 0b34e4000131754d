// The FFN side of a decode step (architecture.md §2.4): a GEMV for up to 8 activation rows (bf16 or f32
// weights, fp32 accumulation, the weight rows streamed once for all rows), MoE routing on the device with the
// exact rule of ref::moe_route, and the routed experts through per-expert weight pointer tables (the shared
// expert can ride along as one more slot). Limits: written for decode-sized token counts; prefill keeps the GEMMs.
#include <cuda_bf16.h>

#include <cmath>

#include "device_util.cuh"
#include "kernels.cuh"

namespace ling::cuda {
namespace {

// GEMV for MT ≤ 8 activation rows: y[m, r] (+)= x[m, :]·w[r, :] (+ bias[r]). One warp per weight row, lanes
// over K in 8-element steps, four steps in flight per lane; the weight row is read once for all rows of x.
// Requires K % 8 == 0 and 16-byte aligned rows (the launcher checks).
template <int MT, typename T>
__global__ void __launch_bounds__(256) k_gemv(const float* __restrict__ x, int64_t ldx, const T* __restrict__ w,
                                              const float* __restrict__ bias, float* __restrict__ y, int64_t ldy,
                                              int M, int64_t N, int64_t K, bool accumulate) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= N) return;
  const int lane = threadIdx.x & 31;
  const T* wr = w + r * K;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  constexpr int U = 4;
  int64_t i = int64_t(lane) * 8;
  for (; i + int64_t(U - 1) * 256 < K; i += U * 256) {
    float f[U][8];
#pragma unroll
    for (int u = 0; u < U; ++u) load8(wr + i + u * 256, f[u]);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) {
#pragma unroll
        for (int u = 0; u < U; ++u) acc[m] += dot8(f[u], x + m * ldx + i + u * 256);
      }
    }
  }
  for (; i < K; i += 256) {
    float f[8];
    load8(wr + i, f);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) acc[m] += dot8(f, x + m * ldx + i);
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m < M) {
      const float v = warp_sum(acc[m]) + (bias ? bias[r] : 0.0f);
      if (lane == 0) y[m * ldy + r] = accumulate ? y[m * ldy + r] + v : v;
    }
  }
}


// Few rows (N ≤ 1024, e.g. the MoE router): one block of 8 warps per weight row, K split over the warps.
template <int MT, typename T>
__global__ void __launch_bounds__(256) k_gemv_rowblock(const float* __restrict__ x, int64_t ldx, const T* __restrict__ w,
                                                       const float* __restrict__ bias, float* __restrict__ y,
                                                       int64_t ldy, int M, int64_t K, bool accumulate) {
  __shared__ float red[8][MT];
  const int64_t r = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T* wr = w + r * K;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  for (int64_t i = int64_t(threadIdx.x) * 8; i < K; i += 2048) {
    float f[8];
    load8(wr + i, f);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) acc[m] += dot8(f, x + m * ldx + i);
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const float v = warp_sum(acc[m]);
    if (lane == 0) red[warp][m] = v;
  }
  __syncthreads();
  if (threadIdx.x < M) {
    float v = 0.0f;
    for (int q = 0; q < 8; ++q) v += red[q][threadIdx.x];
    v += bias ? bias[r] : 0.0f;
    y[threadIdx.x * ldy + r] = accumulate ? y[threadIdx.x * ldy + r] + v : v;
  }
}


// One warp per token (ref::moe_route): sigmoid scores, selection scores with the bias, group scores from each
// group's top-2, topk_group groups kept, top-k among their experts; ties go to the lower index everywhere.
constexpr int kMaxExpertsPerLane = 16;  // E ≤ 512
__global__ void k_moe_route(const float* logits, const float* bias, int32_t* ids, float* wts, int64_t n, int E, int k,
                            int n_group, int topk_group, float scaling, int ld, bool shared_slot) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (t >= n) return;
  const int lane = threadIdx.x & 31;
  const float ninf = -INFINITY;
  const float* lg = logits + t * E;
  float s[kMaxExpertsPerLane], sel[kMaxExpertsPerLane];  // expert e = lane + 32·i
  for (int i = 0; i < kMaxExpertsPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e < E) {
      s[i] = 1.0f / (1.0f + float(exp(-double(lg[e]))));  // expf correctly rounded, as the host's
      sel[i] = s[i] + (bias ? bias[e] : 0.0f);
    } else {
      s[i] = 0.0f;
      sel[i] = ninf;
    }
  }
  // Group scores: lane g < n_group scans its group in index order (selection scores staged in shared memory).
  __shared__ float stage[4][32 * kMaxExpertsPerLane];
  float* st = stage[(threadIdx.x >> 5) & 3];
  for (int i = 0; i < kMaxExpertsPerLane; ++i)
    if (lane + 32 * i < E) st[lane + 32 * i] = sel[i];
  __syncwarp();
  const int per = E / n_group;
  float gscore = ninf;
  if (lane < n_group) {
    float a = ninf, b = ninf;
    for (int e = lane * per; e < (lane + 1) * per; ++e) {
      const float v = st[e];
      if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
    }
    gscore = per >= 2 ? a + b : a;
  }
  // Keep topk_group groups (descending, lower index on ties).
  unsigned kept = 0;
  for (int i = 0; i < topk_group; ++i) {
    float best = lane < n_group && !((kept >> lane) & 1u) ? gscore : ninf;
    int bi = lane < n_group && !((kept >> lane) & 1u) ? lane : 1 << 30;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (bi < 32) kept |= 1u << bi;
  }
  for (int i = 0; i < kMaxExpertsPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e < E && !((kept >> (e / per)) & 1u)) sel[i] = ninf;
  }
  // Top-k experts, descending selection score, lower index on ties; taken ones leave the race.
  unsigned taken = 0;
  float sum = 0.0f;
  int32_t my_id = 0;
  float my_s = 0.0f;
  for (int i = 0; i < k; ++i) {
    float best = ninf;
    int bi = 1 << 30;
    for (int j = 0; j < kMaxExpertsPerLane; ++j) {
      const int e = lane + 32 * j;
      if (e < E && !((taken >> j) & 1u) && (sel[j] > best || (sel[j] == best && e < bi))) {
        best = sel[j];
        bi = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    // −inf candidates (experts of dropped groups) compete like any value: the lowest index wins, as in the
    // reference's stable sort.
    if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
    const float sv = __shfl_sync(0xffffffffu, s[(bi >> 5) & (kMaxExpertsPerLane - 1)], bi & 31);
    sum += sv;
    if (lane == i) { my_id = bi; my_s = sv; }
  }
  const float denom = k > 1 ? sum + 1e-20f : 1.0f;
  if (lane < k) {
    ids[t * ld + lane] = my_id;
    wts[t * ld + lane] = (my_s / denom) * scaling;
  } else if (lane == k && shared_slot) {  // the shared expert as slot k: table entry E, weight 1
    ids[t * ld + k] = E;
    wts[t * ld + k] = 1.0f;
  }
}


// grid (n·k slots, ceil(I / 8)), 8 warps: act[slot, i] = silu(x·gate_iᵀ) · (x·up_iᵀ) for the slot's expert.
template <typename T>
__global__ void k_moe_gate_up(const float* x, int64_t H, const int32_t* ids, int k, const T* const* gate_up,
                              float* act, int64_t I) {
  const int64_t slot = blockIdx.x, t = slot / k;
  const T* w = gate_up[ids[slot]];
  const float* xs = x + t * H;
  const int64_t i = blockIdx.y * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (i >= I) return;
  float g = 0.0f, u = 0.0f;
  if (w) {
    g = warp_dot_u(xs, w + i * H, H);
    u = warp_dot_u(xs, w + (I + i) * H, H);
  }
  if ((threadIdx.x & 31) == 0) act[slot * I + i] = (g / (1.0f + expf(-g))) * u;
}


// Down projection in two passes, each as wide as the GEMVs: part[slot, h] = act[slot]·down_hᵀ (grid
// (n·k, ceil(H / 8)), warp per output; 0 for an expert not held), then out[t, h] (+)= Σ_j w[t, j]·part[t·k + j, h]
// with j ascending (deterministic).
template <typename T>
__global__ void k_moe_down_part(const float* act, int64_t I, const int32_t* ids, const T* const* down, float* part,
                                int64_t H) {
  const int64_t slot = blockIdx.x;
  const T* w = down[ids[slot]];
  const int64_t h = blockIdx.y * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (h >= H) return;
  const float v = w ? warp_dot_u(act + slot * I, w + h * I, I) : 0.0f;
  if ((threadIdx.x & 31) == 0) part[slot * H + h] = v;
}
__global__ void k_moe_combine_parts(const float* part, const float* wts, float* out, int64_t n, int k, int64_t H,
                                    bool accumulate) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * H) return;
  const int64_t t = i / H, h = i % H;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) acc += wts[t * k + j] * part[(t * k + j) * H + h];
  out[i] = accumulate ? out[i] + acc : acc;
}


}  // namespace

bool gemv_supported(const float* x, int64_t ldx, const void* w, int64_t M, int64_t K, bool bf16) {
  const auto al = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  return M >= 1 && M <= 8 && K % 8 == 0 && ldx % 4 == 0 && al(x) && al(w);
}


template <int MT>
static void gemv_mt(const float* x, int64_t ldx, const void* w, bool bf16, const float* bias, float* y, int64_t ldy,
                    int64_t M, int64_t N, int64_t K, bool accumulate, cudaStream_t s) {
  if (N <= 1024) {
    if (bf16)
      k_gemv_rowblock<MT, __nv_bfloat16><<<unsigned(N), 256, 0, s>>>(x, ldx, static_cast<const __nv_bfloat16*>(w), bias,
                                                                     y, ldy, int(M), K, accumulate);
    else
      k_gemv_rowblock<MT, float><<<unsigned(N), 256, 0, s>>>(x, ldx, static_cast<const float*>(w), bias, y, ldy,
                                                             int(M), K, accumulate);
    return;
  }
  const unsigned blocks = unsigned((N + 7) / 8);
  if (bf16)
    k_gemv<MT, __nv_bfloat16><<<blocks, 256, 0, s>>>(x, ldx, static_cast<const __nv_bfloat16*>(w), bias, y, ldy,
                                                     int(M), N, K, accumulate);
  else
    k_gemv<MT, float><<<blocks, 256, 0, s>>>(x, ldx, static_cast<const float*>(w), bias, y, ldy, int(M), N, K,
                                             accumulate);
}

void gemv(const float* x, int64_t ldx, const void* w, bool bf16, const float* bias, float* y, int64_t ldy, int64_t M,
          int64_t N, int64_t K, bool accumulate, cudaStream_t s) {
  if (M * N == 0) return;
  if (M == 1) gemv_mt<1>(x, ldx, w, bf16, bias, y, ldy, M, N, K, accumulate, s);
  else if (M == 2) gemv_mt<2>(x, ldx, w, bf16, bias, y, ldy, M, N, K, accumulate, s);
  else if (M <= 4) gemv_mt<4>(x, ldx, w, bf16, bias, y, ldy, M, N, K, accumulate, s);
  else gemv_mt<8>(x, ldx, w, bf16, bias, y, ldy, M, N, K, accumulate, s);
}


bool moe_route_supported(int64_t E, int64_t k, int64_t n_group) {
  return E <= 32 * kMaxExpertsPerLane && k < 32 && n_group <= 32 && E % n_group == 0;
}

void moe_route(const float* logits, const float* bias, int32_t* ids, float* weights, int64_t n, int64_t E, int64_t k,
               int64_t n_group, int64_t topk_group, float routed_scaling, bool shared_slot, cudaStream_t s) {
  if (n == 0) return;
  const int warps = 4;
  k_moe_route<<<unsigned((n + warps - 1) / warps), 32 * warps, 0, s>>>(
      logits, bias, ids, weights, n, int(E), int(k), int(n_group), int(topk_group), routed_scaling,
      int(k + (shared_slot ? 1 : 0)), shared_slot);
}


void moe_gate_up(const float* x, int64_t n, int64_t H, const int32_t* ids, int64_t k, const void* const* gate_up,
                 bool bf16, float* act, int64_t I, cudaStream_t s) {
  if (n * k == 0) return;
  const dim3 grid{unsigned(n * k), unsigned((I + 7) / 8)};
  if (bf16)
    k_moe_gate_up<__nv_bfloat16><<<grid, 256, 0, s>>>(x, H, ids, int(k),
                                                         reinterpret_cast<const __nv_bfloat16* const*>(gate_up), act, I);
  else
    k_moe_gate_up<float><<<grid, 256, 0, s>>>(x, H, ids, int(k), reinterpret_cast<const float* const*>(gate_up), act, I);
}


void moe_down(const float* act, int64_t I, const int32_t* ids, const float* weights, int64_t k,
              const void* const* down, bool bf16, float* out, int64_t n, int64_t H, bool accumulate, float* part,
              cudaStream_t s) {
  if (n == 0) return;
  const dim3 grid{unsigned(n * k), unsigned((H + 7) / 8)};
  if (bf16)
    k_moe_down_part<__nv_bfloat16><<<grid, 256, 0, s>>>(act, I, ids, reinterpret_cast<const __nv_bfloat16* const*>(down),
                                                        part, H);
  else
    k_moe_down_part<float><<<grid, 256, 0, s>>>(act, I, ids, reinterpret_cast<const float* const*>(down), part, H);
  k_moe_combine_parts<<<unsigned((n * H + 255) / 256), 256, 0, s>>>(part, weights, out, n, int(k), H, accumulate);
}


}  // namespace ling::cuda
