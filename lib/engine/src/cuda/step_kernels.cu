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
                            int n_group, int topk_group, float scaling) {
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
  // Group scores: lane g < n_group scans its group (values gathered through shuffles, in index order).
  const int per = E / n_group;
  float gscore = ninf;
  {
    float a = ninf, b = ninf;
    for (int e = 0; e < E; ++e) {
      const float v = __shfl_sync(0xffffffffu, sel[e >> 5], e & 31);
      if (lane == e / per && lane < n_group) {
        if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
      }
    }
    if (lane < n_group) gscore = per >= 2 ? a + b : a;
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
    ids[t * k + lane] = my_id;
    wts[t * k + lane] = (my_s / denom) * scaling;
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
    g = warp_dot(xs, w + i * H, H);
    u = warp_dot(xs, w + (I + i) * H, H);
  }
  if ((threadIdx.x & 31) == 0) act[slot * I + i] = (g / (1.0f + expf(-g))) * u;
}

// grid (n, ceil(H / 8)), 8 warps: out[t, h] (+)= Σ_j w[t, j] · act[t·k + j]·down_hᵀ, j ascending.
template <typename T>
__global__ void k_moe_down(const float* act, int64_t I, const int32_t* ids, const float* wts, int k,
                           const T* const* down, float* out, int64_t H, bool accumulate) {
  const int64_t t = blockIdx.x;
  const float* as = act + t * k * I;
  const int64_t h = blockIdx.y * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (h >= H) return;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) {
    const T* w = down[ids[t * k + j]];
    if (w) acc += wts[t * k + j] * warp_dot(as + j * I, w + h * I, I);
  }
  if ((threadIdx.x & 31) == 0) out[t * H + h] = accumulate ? out[t * H + h] + acc : acc;
}

// grid (T, nh): absorbed MLA decode (ref::mla_decode_absorbed) for query t, head h over cache rows j ≤ pos[t]
// (at most S). Shared: q̃ [r] and u [r]; scratch: S scores per block.
template <typename T>
__global__ void k_mla_absorbed(const float* q, int64_t ldq, const float* cache, const T* kv_b, float* o,
                               const int64_t* pos, int64_t S, int64_t nh, int64_t dn, int64_t dr, int64_t dv,
                               int64_t r, float scale, float* scratch) {
  extern __shared__ float sm[];
  float* qt = sm;       // [r]
  float* u = sm + r;    // [r]
  __shared__ float red[32];
  __shared__ double redd[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, lc = r + dr, stride = dn + dv;
  const float* qn = q + t * ldq + h * (dn + dr);
  const float* qp = qn + dn;
  const T* wuk = kv_b + h * stride * r;
  const T* wuv = kv_b + (h * stride + dn) * r;
  for (int64_t c = threadIdx.x; c < r; c += blockDim.x) {
    float a = 0.0f;
    for (int64_t d = 0; d < dn; ++d) a += ld(wuk + d * r + c) * qn[d];
    qt[c] = a;
  }
  __syncthreads();
  const int64_t n = min(pos[t] + 1, S);
  float* sc = scratch + (t * nh + h) * S;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  float mx = -INFINITY;
  for (int64_t j = warp; j < n; j += nw) {
    const float* row = cache + j * lc;
    float d = 0.0f;
    for (int64_t c = lane; c < r; c += 32) d += qt[c] * row[c];
    for (int64_t c = lane; c < dr; c += 32) d += qp[c] * row[r + c];
    d = warp_sum(d) * scale;
    if (lane == 0) sc[j] = d;
    mx = fmaxf(mx, d);
  }
  for (int o2 = 16; o2 > 0; o2 >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = red[0];
    for (int i = 1; i < nw; ++i) m = fmaxf(m, red[i]);
    red[0] = m;
  }
  __syncthreads();
  mx = red[0];
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    sc[j] = expf(sc[j] - mx);
    sum += sc[j];
  }
  for (int o2 = 16; o2 > 0; o2 >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o2);
  if (lane == 0) redd[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int i = 0; i < nw; ++i) s += redd[i];
    redd[0] = s;
  }
  __syncthreads();
  const float inv = n > 0 ? float(1.0 / redd[0]) : 0.0f;
  for (int64_t c = threadIdx.x; c < r; c += blockDim.x) {
    float a = 0.0f;
    for (int64_t j = 0; j < n; ++j) a += sc[j] * cache[j * lc + c];
    u[c] = a * inv;
  }
  __syncthreads();
  float* orow = o + (t * nh + h) * dv;
  for (int64_t i = warp; i < dv; i += nw) {
    float a = 0.0f;
    for (int64_t c = lane; c < r; c += 32) a += ld(wuv + i * r + c) * u[c];
    a = warp_sum(a);
    if (lane == 0) orow[i] = a;
  }
}

}  // namespace

void head_rms_norm(float* x, const float* w, int64_t rows, int64_t heads, int64_t hd, int64_t ld, double eps,
                   cudaStream_t s) {
  if (rows * heads > 0) k_head_rms_norm<<<dim3(unsigned(rows), unsigned(heads)), 128, 0, s>>>(x, w, hd, ld, eps);
}

void write_row_at(const float* src, float* dst, int64_t width, const int64_t* pos, cudaStream_t s) {
  if (width > 0) k_write_row_at<<<unsigned(std::min<int64_t>((width + 255) / 256, 64)), 256, 0, s>>>(src, dst, width, pos);
}

bool moe_route_supported(int64_t E, int64_t k, int64_t n_group) {
  return E <= 32 * kMaxExpertsPerLane && k <= 32 && n_group <= 32 && E % n_group == 0;
}

void moe_route(const float* logits, const float* bias, int32_t* ids, float* weights, int64_t n, int64_t E, int64_t k,
               int64_t n_group, int64_t topk_group, float routed_scaling, cudaStream_t s) {
  if (n == 0) return;
  const int warps = 4;
  k_moe_route<<<unsigned((n + warps - 1) / warps), 32 * warps, 0, s>>>(logits, bias, ids, weights, n, int(E), int(k),
                                                                      int(n_group), int(topk_group), routed_scaling);
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
              const void* const* down, bool bf16, float* out, int64_t n, int64_t H, bool accumulate, cudaStream_t s) {
  if (n == 0) return;
  const dim3 grid{unsigned(n), unsigned((H + 7) / 8)};
  if (bf16)
    k_moe_down<__nv_bfloat16><<<grid, 256, 0, s>>>(act, I, ids, weights, int(k),
                                                      reinterpret_cast<const __nv_bfloat16* const*>(down), out, H, accumulate);
  else
    k_moe_down<float><<<grid, 256, 0, s>>>(act, I, ids, weights, int(k), reinterpret_cast<const float* const*>(down),
                                             out, H, accumulate);
}

void mla_absorbed(const float* q, int64_t ldq, const float* cache, const void* kv_b, bool bf16, float* o,
                  const int64_t* pos, int64_t T, int64_t S, int64_t nh, int64_t dn, int64_t dr, int64_t dv, int64_t r,
                  float scale, float* scratch, cudaStream_t s) {
  if (T * nh == 0) return;
  const dim3 grid{unsigned(T), unsigned(nh)};
  const size_t shm = sizeof(float) * size_t(2 * r);
  if (bf16)
    k_mla_absorbed<__nv_bfloat16><<<grid, 256, shm, s>>>(q, ldq, cache, static_cast<const __nv_bfloat16*>(kv_b), o,
                                                          pos, S, nh, dn, dr, dv, r, scale, scratch);
  else
    k_mla_absorbed<float><<<grid, 256, shm, s>>>(q, ldq, cache, static_cast<const float*>(kv_b), o, pos, S, nh, dn,
                                                 dr, dv, r, scale, scratch);
}

}  // namespace ling::cuda
