// Kernels of the CUDA backend's decode step (architecture.md §2.4, §2.7): everything a single-token step needs
// so that it runs without a host round trip and can be captured in a CUDA graph — per-head QK-norm in one
// launch, cache rows written at a position read from device memory, MoE routing on the device (the exact rule
// of ref::moe_route), expert GEMVs through per-expert weight pointer tables, and the absorbed MLA decode for any
// latent size. Weights are bf16 or f32 (template); accumulation in fp32 (fp64 where the reference sums in fp64).
// Limits: the expert and MLA kernels are written for small token counts (decode); prefill keeps the GEMM path.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels.cuh"

namespace ling::cuda {
namespace {

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Dot product of an fp32 vector x[K] with a weight row w[K] by one warp (lanes stride K; 8 bf16 per 16-byte
// load when K and the row are 8-aligned).
__device__ __forceinline__ float warp_dot(const float* x, const float* w, int64_t K) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x & 31; i < K; i += 32) acc += x[i] * w[i];
  return warp_sum(acc);
}
__device__ __forceinline__ float warp_dot(const float* x, const __nv_bfloat16* w, int64_t K) {
  float acc = 0.0f;
  const int lane = threadIdx.x & 31;
  if ((K & 7) == 0 && (reinterpret_cast<uintptr_t>(w) & 15) == 0) {
    for (int64_t i = int64_t(lane) * 8; i < K; i += 256) {
      const uint4 raw = *reinterpret_cast<const uint4*>(w + i);
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 f = __bfloat1622float2(h[j]);
        acc += x[i + 2 * j] * f.x + x[i + 2 * j + 1] * f.y;
      }
    }
  } else {
    for (int64_t i = lane; i < K; i += 32) acc += x[i] * __bfloat162float(w[i]);
  }
  return warp_sum(acc);
}

// 8 consecutive weights as floats (one 16-byte load for bf16, two for f32).
__device__ __forceinline__ void load8(const __nv_bfloat16* w, float (&f)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(w));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 v = __bfloat1622float2(h[j]);
    f[2 * j] = v.x;
    f[2 * j + 1] = v.y;
  }
}
__device__ __forceinline__ void load8(const float* w, float (&f)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(w)), b = __ldg(reinterpret_cast<const float4*>(w + 4));
  f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

// Dot product of x[K] (fp32) and a weight row by one warp with four 16-byte weight loads in flight per lane
// (K % 8 == 0, 16-byte aligned row and x); falls back to warp_dot otherwise.
template <typename T>
__device__ __forceinline__ float warp_dot_u(const float* __restrict__ x, const T* __restrict__ w, int64_t K) {
  if ((K & 7) != 0 || (reinterpret_cast<uintptr_t>(w) & 15) != 0 || (reinterpret_cast<uintptr_t>(x) & 15) != 0)
    return warp_dot(x, w, K);
  float acc = 0.0f;
  int64_t i = int64_t(threadIdx.x & 31) * 8;
  for (; i + 768 < K; i += 1024) {
    float f[4][8];
#pragma unroll
    for (int u = 0; u < 4; ++u) load8(w + i + u * 256, f[u]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(x + i + u * 256));
      const float4 b = __ldg(reinterpret_cast<const float4*>(x + i + u * 256 + 4));
      acc += f[u][0] * a.x + f[u][1] * a.y + f[u][2] * a.z + f[u][3] * a.w + f[u][4] * b.x + f[u][5] * b.y +
             f[u][6] * b.z + f[u][7] * b.w;
    }
  }
  for (; i < K; i += 256) {
    float f[8];
    load8(w + i, f);
    const float4 a = __ldg(reinterpret_cast<const float4*>(x + i));
    const float4 b = __ldg(reinterpret_cast<const float4*>(x + i + 4));
    acc += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
  }
  return warp_sum(acc);
}

// grid (rows, heads): y[r, h, :] = x[r, h, :] / rms · w (fp64 sum of squares like ref::rms_norm).
__global__ void k_head_rms_norm(float* x, const float* w, int64_t hd, int64_t ld, double eps) {
  __shared__ double red[32];
  float* xr = x + blockIdx.x * ld + blockIdx.y * hd;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) ss += double(xr[i]) * double(xr[i]);
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_down_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int i = 0; i < int(blockDim.x >> 5); ++i) s += red[i];
    red[0] = s;
  }
  __syncthreads();
  const float inv = float(1.0 / sqrt(red[0] / double(hd) + eps));
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) xr[i] = (xr[i] * inv) * w[i];
}

__global__ void k_write_row_at(const float* src, float* dst, int64_t width, const int64_t* pos) {
  const int64_t p = *pos;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < width; i += int64_t(gridDim.x) * blockDim.x)
    dst[p * width + i] = src[i];
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

// grid (T, nh): the absorbed query q̃_h = W_UK_hᵀ q_nope_h [r] followed by q_pe_h [dr], into qa [T, nh, r + dr].
template <typename T>
__global__ void k_mla_q_absorb(const float* q, int64_t ldq, const T* kv_b, float* qa, int64_t nh, int64_t dn,
                               int64_t dr, int64_t dv, int64_t r) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const float* qn = q + t * ldq + h * (dn + dr);
  const T* wuk = kv_b + h * (dn + dv) * r;
  float* out = qa + (t * nh + h) * (r + dr);
  for (int64_t c = threadIdx.x; c < r; c += blockDim.x) {
    float a = 0.0f;
#pragma unroll 8
    for (int64_t d = 0; d < dn; ++d) a += ld(wuk + d * r + c) * qn[d];
    out[c] = a;
  }
  for (int64_t c = threadIdx.x; c < dr; c += blockDim.x) out[r + c] = qn[dn + c];
}
// grid (T, nh), 8 warps: o_h[i] = W_UV_h[i, :]·u_h for i < dv (warp per output).
template <typename T>
__global__ void k_mla_out(const float* u, const T* kv_b, float* o, int64_t nh, int64_t dn, int64_t dv, int64_t r) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const float* ur = u + (t * nh + h) * r;
  const T* wuv = kv_b + (h * (dn + dv) + dn) * r;
  for (int64_t i = threadIdx.x >> 5; i < dv; i += blockDim.x >> 5) {
    const float a = warp_dot_u(ur, wuv + i * r, r);
    if ((threadIdx.x & 31) == 0) o[(t * nh + h) * dv + i] = a;
  }
}


// Split-KV decode attention, pass 1. grid (T·nh, splits), 8 warps: block (row t, head h, split s) attends over
// keys [s·chunk, (s+1)·chunk) ∩ [0, pos[t]] and leaves its running max m, sum l = Σ e^{x−m} and
// acc[dv] = Σ e^{x−m} v in the workspace (m = −inf, l = 0 when its range is empty).
constexpr int kAttnChunk = 64;
__global__ void k_decode_attn_part(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                                   int64_t ldv, const int64_t* pos, int64_t nh, int64_t G, int64_t dk, int64_t dv,
                                   float scale, float* ws) {
  __shared__ float sc[kAttnChunk];
  __shared__ float red[32];
  const int64_t th = blockIdx.x, t = th / nh, h = th % nh, g = h / G, split = blockIdx.y;
  const int64_t n = pos[t] + 1, j0 = split * kAttnChunk, j1 = min(n, j0 + kAttnChunk);
  const int64_t splits = gridDim.y;
  float* part = ws + (th * splits + split) * (dv + 2);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (j0 >= j1) {
    for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) part[2 + i] = 0.0f;
    if (threadIdx.x == 0) {
      part[0] = -INFINITY;
      part[1] = 0.0f;
    }
    return;
  }
  const float* qr = q + t * ldq + h * dk;
  float mx = -INFINITY;
  for (int64_t j = j0 + warp; j < j1; j += nw) {
    const float* kr = k + j * ldk + g * dk;
    float d = 0.0f;
    for (int64_t i = lane; i < dk; i += 32) d += qr[i] * kr[i];
    d = warp_sum(d) * scale;
    if (lane == 0) sc[j - j0] = d;
    mx = fmaxf(mx, d);
  }
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int i = 1; i < nw; ++i) mx = fmaxf(mx, red[i]);
  __syncthreads();
  for (int64_t j = threadIdx.x; j < j1 - j0; j += blockDim.x) sc[j] = expf(sc[j] - mx);
  __syncthreads();
  if (threadIdx.x == 0) {
    float l = 0.0f;
    for (int64_t j = 0; j < j1 - j0; ++j) l += sc[j];
    part[0] = mx;
    part[1] = l;
  }
  // P·V: thread (i, lane group) sums every `groups`-th key of value column i; the groups meet in shared memory.
  __shared__ float pv[256];
  const int64_t groups = dv <= int64_t(blockDim.x) ? int64_t(blockDim.x) / dv : 1;
  for (int64_t i0 = 0; i0 < dv; i0 += int64_t(blockDim.x) / groups) {
    const int64_t i = i0 + threadIdx.x % (blockDim.x / groups), grp = threadIdx.x / (blockDim.x / groups);
    float a = 0.0f;
    if (i < dv && grp < groups)
      for (int64_t j = j0 + grp; j < j1; j += groups) a += sc[j - j0] * v[j * ldv + g * dv + i];
    __syncthreads();
    pv[threadIdx.x] = a;
    __syncthreads();
    if (grp == 0 && i < dv) {
      float sum = 0.0f;
      for (int64_t q = 0; q < groups; ++q) sum += pv[q * (blockDim.x / groups) + threadIdx.x % (blockDim.x / groups)];
      part[2 + i] = sum;
    }
  }
}
// Pass 2. grid T·nh: o = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s.
__global__ void k_decode_attn_combine(const float* ws, int64_t splits, int64_t dv, float* o, int64_t ldo,
                                      int64_t nh) {
  const int64_t th = blockIdx.x, t = th / nh, h = th % nh;
  const float* parts = ws + th * splits * (dv + 2);
  float M = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) M = fmaxf(M, parts[s * (dv + 2)]);
  float L = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    const float m = parts[s * (dv + 2)];
    if (m > -INFINITY) L += expf(m - M) * parts[s * (dv + 2) + 1];
  }
  for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) {
    float a = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const float m = parts[s * (dv + 2)];
      if (m > -INFINITY) a += expf(m - M) * parts[s * (dv + 2) + 2 + i];
    }
    o[t * ldo + h * dv + i] = L > 0.0f ? a / L : 0.0f;
  }
}

__global__ void k_spin(int64_t ns) {
  const long long t0 = clock64();
  // ~1.5 GHz: cycles ≈ 1.5·ns; good enough to hold the stream while the host queues a step.
  while (clock64() - t0 < 1.5 * double(ns)) __nanosleep(1000);
}

// y[m, r] = x[m, :]·w[r, :] for fp32 weights, one warp per row r, m < M (small M; decode).
__global__ void k_gemv_f32(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t M, int64_t N,
                           int64_t K) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= N) return;
  for (int64_t m = 0; m < M; ++m) {
    const float d = warp_dot(x + m * ldx, w + r * K, K);
    if ((threadIdx.x & 31) == 0) y[m * ldy + r] = d;
  }
}

// Block-wide fp64 sum (blockDim a multiple of 32, ≤ 1024).
__device__ double block_sum_d(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  double s = 0.0;
  for (int i = 0; i < int(blockDim.x >> 5); ++i) s += red[i];
  return s;
}

// grid rows: h += d; y = h / rms(h) · w (ref::rms_norm after the residual add).
__global__ void k_add_rms_norm(float* h, const float* d, const float* w, float* y, int64_t dim, double eps) {
  __shared__ double red[32];
  float* hr = h + blockIdx.x * dim;
  const float* dr = d ? d + blockIdx.x * dim : nullptr;
  float* yr = y + blockIdx.x * dim;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = dr ? hr[i] + dr[i] : hr[i];
    if (dr) hr[i] = v;
    ss += double(v) * double(v);
  }
  ss = block_sum_d(ss, red);
  const float inv = float(1.0 / sqrt(ss / double(dim) + eps));
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (hr[i] * inv) * w[i];
}

// The same with float4 accesses and the row held in registers (dim % 4 == 0, dim ≤ 16384, 1024 threads): every
// load of the row is in flight at once instead of one latency per strided step. d may be null (plain norm).
__global__ void __launch_bounds__(1024) k_add_rms_norm_v(float* h, const float* d, const float* w, float* y,
                                                         int64_t dim, double eps) {
  __shared__ double red[32];
  const int64_t n4 = dim / 4;
  float4* hr = reinterpret_cast<float4*>(h + blockIdx.x * dim);
  const float4* dr = d ? reinterpret_cast<const float4*>(d + blockIdx.x * dim) : nullptr;
  float4 v[4];
  double ss = 0.0;
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4) v[u] = hr[i];
  }
  if (dr) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = threadIdx.x + int64_t(u) * 1024;
      if (i < n4) {
        const float4 a = dr[i];
        v[u].x += a.x; v[u].y += a.y; v[u].z += a.z; v[u].w += a.w;
        hr[i] = v[u];
      }
    }
  }
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4)
      ss += double(v[u].x) * v[u].x + double(v[u].y) * v[u].y + double(v[u].z) * v[u].z + double(v[u].w) * v[u].w;
  }
  ss = block_sum_d(ss, red);
  const float inv = float(1.0 / sqrt(ss / double(dim) + eps));
  const float4* wr = reinterpret_cast<const float4*>(w);
  float4* yr = reinterpret_cast<float4*>(y + blockIdx.x * dim);
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4) {
      const float4 g = wr[i];
      yr[i] = make_float4((v[u].x * inv) * g.x, (v[u].y * inv) * g.y, (v[u].z * inv) * g.z, (v[u].w * inv) * g.w);
    }
  }
}

// grid (rows, nq + nk), one head of hd values per block: optional per-head RMSNorm (q heads with wq, k heads
// with wk), then NeoX RoPE on the first rope_dim values (cuda::rope's arithmetic).
__global__ void k_qk_norm_rope(float* x, int64_t ld, int64_t nq, int64_t hd, const float* wq, const float* wk,
                               double eps, const int64_t* pos, const float* inv_freq, int64_t half, float af) {
  __shared__ double red[32];
  __shared__ float buf[1024];
  const int64_t head = blockIdx.y;
  float* xr = x + blockIdx.x * ld + head * hd;
  const float* w = head < nq ? wq : wk;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = xr[i];
  if (w) {
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) ss += double(buf[i]) * double(buf[i]);
    ss = block_sum_d(ss, red);
    const float inv = float(1.0 / sqrt(ss / double(hd) + eps));
    __syncthreads();
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = (buf[i] * inv) * w[i];
  }
  __syncthreads();
  const float p = float(pos[blockIdx.x]);
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float v = buf[i];
    if (i < 2 * half) {
      const int64_t j = i < half ? i : i - half;
      const float ang = p * inv_freq[j];
      const float c = float(cos(double(ang))) * af, sn = float(sin(double(ang))) * af;
      v = i < half ? buf[j] * c - buf[j + half] * sn : buf[j + half] * c + buf[j] * sn;
    }
    xr[i] = v;
  }
}

// grid rows: o = GroupRMSNorm(o) · w ⊙ sigmoid(gate), groups of gs values (the Lightning output gate).
__global__ void k_group_norm_gate(float* o, const float* w, const float* gate, int64_t width, int64_t gs,
                                  double eps) {
  __shared__ double red[32];
  float* orow = o + blockIdx.x * width;
  const float* grow = gate + blockIdx.x * width;
  for (int64_t g0 = 0; g0 < width; g0 += gs) {
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) ss += double(orow[g0 + i]) * double(orow[g0 + i]);
    ss = block_sum_d(ss, red);
    const float inv = float(1.0 / sqrt(ss / double(gs) + eps));
    for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) {
      const float v = (orow[g0 + i] * inv) * w[g0 + i];
      orow[g0 + i] = v * (1.0f / (1.0f + expf(-grow[g0 + i])));
    }
    __syncthreads();
  }
}

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
        for (int u = 0; u < U; ++u) {
          const float4 a = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i + u * 256));
          const float4 b = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i + u * 256 + 4));
          acc[m] += f[u][0] * a.x + f[u][1] * a.y + f[u][2] * a.z + f[u][3] * a.w + f[u][4] * b.x + f[u][5] * b.y +
                    f[u][6] * b.z + f[u][7] * b.w;
        }
      }
    }
  }
  for (; i < K; i += 256) {
    float f[8];
    load8(wr + i, f);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i));
        const float4 b = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i + 4));
        acc[m] += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
      }
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

// grid rows (heads of one query): x[row, j] = softmax_j(scale · x[row, j]) over j ≤ *pos, 0 for j > *pos
// (ref::attention's arithmetic: fp32 exponentials, fp64 sum).
__global__ void k_masked_softmax(float* x, int64_t S, const int64_t* pos, float scale) {
  __shared__ float redf[32];
  __shared__ double redd[32];
  float* xr = x + blockIdx.x * S;
  const int64_t n = min(*pos + 1, S);
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    xr[j] *= scale;
    mx = fmaxf(mx, xr[j]);
  }
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if ((threadIdx.x & 31) == 0) redf[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = redf[0];
  for (int i = 1; i < int(blockDim.x >> 5); ++i) mx = fmaxf(mx, redf[i]);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(xr[j] - mx);
    xr[j] = e;
    sum += e;
  }
  sum = block_sum_d(sum, redd);
  const float inv = n > 0 ? float(1.0 / sum) : 0.0f;
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) xr[j] = j < n ? xr[j] * inv : 0.0f;
}

// grid rows: sumsq[row] = Σ_c o[row, c]² (fp64), then o = o · w ⊙ sigmoid(gate) — the Lightning output gate
// without its group normalisation (tensor-parallel ranks whose norm groups span ranks finish it together).
__global__ void k_gate_unnormed(float* o, const float* w, const float* gate, int64_t width, double* sumsq) {
  __shared__ double red[32];
  float* orow = o + blockIdx.x * width;
  const float* grow = gate + blockIdx.x * width;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) ss += double(orow[i]) * double(orow[i]);
  ss = block_sum_d(ss, red);
  if (threadIdx.x == 0) sumsq[blockIdx.x] = ss;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    orow[i] = (orow[i] * w[i]) * (1.0f / (1.0f + expf(-grow[i])));
}

__global__ void k_scale_rows(float* x, const float* f, int64_t rows, int64_t cols) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < rows * cols) x[i] *= f[i / cols];
}

}  // namespace

void add_rms_norm(float* h, const float* d, const float* w, float* y, int64_t rows, int64_t dim, double eps,
                  cudaStream_t s) {
  if (rows == 0) return;
  const auto al = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  if (dim % 4 == 0 && dim <= 4 * 4 * 1024 && al(h) && (!d || al(d)) && al(w) && al(y))
    k_add_rms_norm_v<<<unsigned(rows), 1024, 0, s>>>(h, d, w, y, dim, eps);
  else
    k_add_rms_norm<<<unsigned(rows), 512, 0, s>>>(h, d, w, y, dim, eps);
}

bool qk_norm_rope_supported(int64_t hd) { return hd <= 1024; }

void qk_norm_rope(float* x, int64_t ld, int64_t rows, int64_t nq, int64_t nk, int64_t hd, const float* wq,
                  const float* wk, double eps, const int64_t* pos, const float* inv_freq, int64_t rope_dim, float af,
                  cudaStream_t s) {
  if (rows * (nq + nk) > 0)
    k_qk_norm_rope<<<dim3(unsigned(rows), unsigned(nq + nk)), 128, 0, s>>>(x, ld, nq, hd, wq, wk, eps, pos, inv_freq,
                                                                         rope_dim / 2, af);
}

void group_norm_gate(float* o, const float* w, const float* gate, int64_t rows, int64_t width, int64_t groups,
                     double eps, cudaStream_t s) {
  if (rows > 0) k_group_norm_gate<<<unsigned(rows), 256, 0, s>>>(o, w, gate, width, width / groups, eps);
}

void scale_rows(float* x, const float* f, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols > 0) k_scale_rows<<<unsigned((rows * cols + 255) / 256), 256, 0, s>>>(x, f, rows, cols);
}

void gate_unnormed(float* o, const float* w, const float* gate, int64_t rows, int64_t width, double* sumsq,
                   cudaStream_t s) {
  if (rows > 0) k_gate_unnormed<<<unsigned(rows), 256, 0, s>>>(o, w, gate, width, sumsq);
}

void head_rms_norm(float* x, const float* w, int64_t rows, int64_t heads, int64_t hd, int64_t ld, double eps,
                   cudaStream_t s) {
  if (rows * heads > 0) k_head_rms_norm<<<dim3(unsigned(rows), unsigned(heads)), 128, 0, s>>>(x, w, hd, ld, eps);
}

void write_row_at(const float* src, float* dst, int64_t width, const int64_t* pos, cudaStream_t s) {
  if (width > 0) k_write_row_at<<<unsigned(std::min<int64_t>((width + 255) / 256, 64)), 256, 0, s>>>(src, dst, width, pos);
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

int64_t decode_attention_workspace(int64_t T, int64_t nh, int64_t S, int64_t dv) {
  return T * nh * ((S + kAttnChunk - 1) / kAttnChunk) * (dv + 2);
}

void decode_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, float* o,
                      int64_t ldo, const int64_t* pos, int64_t T, int64_t S, int64_t nh, int64_t nkv, int64_t dk,
                      int64_t dv, float scale, float* ws, cudaStream_t s) {
  if (T * nh == 0 || S == 0) return;
  const int64_t splits = (S + kAttnChunk - 1) / kAttnChunk;
  k_decode_attn_part<<<dim3(unsigned(T * nh), unsigned(splits)), 256, 0, s>>>(q, ldq, k, ldk, v, ldv, pos, nh, nh / nkv,
                                                                             dk, dv, scale, ws);
  k_decode_attn_combine<<<unsigned(T * nh), 128, 0, s>>>(ws, splits, dv, o, ldo, nh);
}

bool gemv_supported(const float* x, int64_t ldx, const void* w, int64_t M, int64_t K, bool bf16) {
  const auto al = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  return M >= 1 && M <= 8 && K % 8 == 0 && ldx % 4 == 0 && al(x) && al(w);
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
      if (m < M) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i));
        const float4 b = __ldg(reinterpret_cast<const float4*>(x + m * ldx + i + 4));
        acc[m] += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
      }
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

void spin(int64_t ns, cudaStream_t s) { k_spin<<<1, 1, 0, s>>>(ns); }

void gemv_f32(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t M, int64_t N, int64_t K,
              cudaStream_t s) {
  if (M * N == 0) return;
  k_gemv_f32<<<unsigned((N + 7) / 8), 256, 0, s>>>(x, ldx, w, y, ldy, M, N, K);
}

void mla_q_absorb(const float* q, int64_t ldq, const void* kv_b, bool bf16, float* qa, int64_t T, int64_t nh,
                  int64_t dn, int64_t dr, int64_t dv, int64_t r, cudaStream_t s) {
  if (T * nh == 0) return;
  const dim3 grid{unsigned(T), unsigned(nh)};
  if (bf16)
    k_mla_q_absorb<__nv_bfloat16><<<grid, 256, 0, s>>>(q, ldq, static_cast<const __nv_bfloat16*>(kv_b), qa, nh, dn, dr,
                                                       dv, r);
  else
    k_mla_q_absorb<float><<<grid, 256, 0, s>>>(q, ldq, static_cast<const float*>(kv_b), qa, nh, dn, dr, dv, r);
}

void mla_out(const float* u, const void* kv_b, bool bf16, float* o, int64_t T, int64_t nh, int64_t dn, int64_t dv,
             int64_t r, cudaStream_t s) {
  if (T * nh == 0) return;
  const dim3 grid{unsigned(T), unsigned(nh)};
  if (bf16)
    k_mla_out<__nv_bfloat16><<<grid, 256, 0, s>>>(u, static_cast<const __nv_bfloat16*>(kv_b), o, nh, dn, dv, r);
  else
    k_mla_out<float><<<grid, 256, 0, s>>>(u, static_cast<const float*>(kv_b), o, nh, dn, dv, r);
}

void masked_softmax(float* x, int64_t rows, int64_t S, const int64_t* pos, float scale, cudaStream_t s) {
  if (rows * S > 0) k_masked_softmax<<<unsigned(rows), 256, 0, s>>>(x, S, pos, scale);
}

}  // namespace ling::cuda
