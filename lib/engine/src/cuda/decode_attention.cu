// Attention of a decode step (architecture.md §2.3, §2.7) without host round trips: cache rows written at a
// position read from device memory, split-KV attention over a cache with room for S rows (one query per row,
// GQA groups or one shared latent head), a masked softmax for GEMM-based scores, and the absorbed MLA query /
// output projections. The row writes and the split-KV attention launch with programmatic dependent launch
// (ling/kernels/pdl.cuh: each waits for the kernel ahead at its start). Limits: fp32 caches; the chunk loop is
// sized for decode (one or few queries).
#include <cuda_bf16.h>

#include <cmath>

#include "device_util.cuh"
#include "kernels.cuh"
#include "ling/kernels/pdl.cuh"

namespace ling::cuda {
namespace {

// grid (x, rows): row y of (src, dst) pairs {0, 1}.
__global__ void k_write_rows_at(const float* src0, float* dst0, const float* src1, float* dst1, int64_t width,
                                const int64_t* pos) {
  kernels::pdl_enter();
  const int64_t p = *pos;
  const float* src = blockIdx.y ? src1 : src0;
  float* dst = blockIdx.y ? dst1 : dst0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < width; i += int64_t(gridDim.x) * blockDim.x)
    dst[p * width + i] = src[i];
}


// The workspace entry of a split without keys: m = −inf, l = 0, acc = 0.
__device__ void empty_part(float* part, int64_t dv) {
  for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) part[2 + i] = 0.0f;
  if (threadIdx.x == 0) part[0] = -INFINITY, part[1] = 0.0f;
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
  kernels::pdl_enter();
  const int64_t th = blockIdx.x, t = th / nh, h = th % nh, g = h / G, split = blockIdx.y;
  const int64_t n = pos[t] + 1, j0 = split * kAttnChunk, j1 = min(n, j0 + kAttnChunk);
  const int64_t splits = gridDim.y;
  float* part = ws + (th * splits + split) * (dv + 2);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (j0 >= j1) {
    empty_part(part, dv);
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
// Pass 1 for 128-wide heads (dk = dv = 128, 16-byte aligned rows): warp w takes keys j0 + w + 8u (u < 8) of the
// block's chunk and lane the dims 4·lane..4·lane+3, so every K and V row of the warp is requested at once (one
// round trip instead of one per key); the eight dots reduce together, each lane keeps its four columns of Σ e·v,
// and the warps meet in shared memory in warp order. The same (m, l, acc) as k_decode_attn_part up to the order
// of the fp32 sums.
__global__ void __launch_bounds__(256) k_decode_attn_part128(const float* q, int64_t ldq, const float* k, int64_t ldk,
                                                             const float* v, int64_t ldv, const int64_t* pos,
                                                             int64_t nh, int64_t G, float scale, float* ws) {
  constexpr int D = 128;
  __shared__ float redm[8], redl[8];
  __shared__ float4 pv[8][32];
  kernels::pdl_enter();
  const int64_t th = blockIdx.x, t = th / nh, h = th % nh, g = h / G, split = blockIdx.y;
  const int64_t n = pos[t] + 1, j0 = split * kAttnChunk, j1 = min(n, j0 + kAttnChunk);
  float* part = ws + (th * int64_t(gridDim.y) + split) * (D + 2);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (j0 >= j1) {
    empty_part(part, D);
    return;
  }
  const float4 qv = *reinterpret_cast<const float4*>(q + t * ldq + h * D + 4 * lane);
  float4 kr[8], vr[8];
#pragma unroll
  for (int u = 0; u < 8; ++u) {
    const int64_t j = j0 + warp + 8 * u;
    kr[u] = vr[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (j < j1) {
      kr[u] = *reinterpret_cast<const float4*>(k + j * ldk + g * D + 4 * lane);
      vr[u] = *reinterpret_cast<const float4*>(v + j * ldv + g * D + 4 * lane);
    }
  }
  float d[8];
#pragma unroll
  for (int u = 0; u < 8; ++u) d[u] = qv.x * kr[u].x + qv.y * kr[u].y + qv.z * kr[u].z + qv.w * kr[u].w;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
#pragma unroll
    for (int u = 0; u < 8; ++u) d[u] += __shfl_xor_sync(0xffffffffu, d[u], o);
  float mx = -INFINITY;
#pragma unroll
  for (int u = 0; u < 8; ++u) {
    d[u] *= scale;
    if (j0 + warp + 8 * u < j1) mx = fmaxf(mx, d[u]);
  }
  if (lane == 0) redm[warp] = mx;
  __syncthreads();
  mx = redm[0];
  for (int w = 1; w < 8; ++w) mx = fmaxf(mx, redm[w]);
  float l = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int u = 0; u < 8; ++u) {
    const float e = j0 + warp + 8 * u < j1 ? expf(d[u] - mx) : 0.0f;
    l += e;
    acc.x += e * vr[u].x, acc.y += e * vr[u].y, acc.z += e * vr[u].z, acc.w += e * vr[u].w;
  }
  pv[warp][lane] = acc;
  if (lane == 0) redl[warp] = l;
  __syncthreads();
  if (warp == 0) {
    float4 a = pv[0][lane];
    for (int w = 1; w < 8; ++w) {
      const float4 b = pv[w][lane];
      a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
    }
    part[2 + 4 * lane] = a.x, part[3 + 4 * lane] = a.y, part[4 + 4 * lane] = a.z, part[5 + 4 * lane] = a.w;
    if (lane == 0) {
      float lt = redl[0];
      for (int w = 1; w < 8; ++w) lt += redl[w];
      part[0] = mx, part[1] = lt;
    }
  }
}

// Pass 2. grid T·nh: o = Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s. used_only: only the splits that hold keys
// (⌈(pos[t] + 1) / chunk⌉ of them; the others are empty by construction) are read.
__global__ void k_decode_attn_combine(const float* ws, int64_t splits, int64_t dv, float* o, int64_t ldo,
                                      int64_t nh, const int64_t* pos, bool used_only) {
  kernels::pdl_enter();
  const int64_t th = blockIdx.x, t = th / nh, h = th % nh;
  const float* parts = ws + th * splits * (dv + 2);
  if (used_only) splits = min(splits, (pos[t] + kAttnChunk) / kAttnChunk);
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



}  // namespace

void write_row_at(const float* src, float* dst, int64_t width, const int64_t* pos, cudaStream_t s) {
  if (width > 0)
    (void)kernels::launch_pdl_unchecked(k_write_rows_at, dim3(unsigned(std::min<int64_t>((width + 255) / 256, 64)), 1),
                                        dim3(256), 0, s, src, dst, src, dst, width, pos);
}
void write_rows_at(const float* src0, float* dst0, const float* src1, float* dst1, int64_t width, const int64_t* pos,
                   cudaStream_t s) {
  if (width > 0)
    (void)kernels::launch_pdl_unchecked(k_write_rows_at, dim3(unsigned(std::min<int64_t>((width + 255) / 256, 64)), 2),
                                        dim3(256), 0, s, src0, dst0, src1, dst1, width, pos);
}


int64_t decode_attention_workspace(int64_t T, int64_t nh, int64_t S, int64_t dv) {
  return T * nh * ((S + kAttnChunk - 1) / kAttnChunk) * (dv + 2);
}

void decode_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, float* o,
                      int64_t ldo, const int64_t* pos, int64_t T, int64_t S, int64_t nh, int64_t nkv, int64_t dk,
                      int64_t dv, float scale, float* ws, cudaStream_t s, bool wide_heads) {
  if (T * nh == 0 || S == 0) return;
  const int64_t splits = (S + kAttnChunk - 1) / kAttnChunk;
  const bool h128 = wide_heads && dk == 128 && dv == 128 && ldq % 4 == 0 && ldk % 4 == 0 && ldv % 4 == 0 && aligned16(q) &&
                    aligned16(k) && aligned16(v);
  if (h128)
    (void)kernels::launch_pdl_unchecked(k_decode_attn_part128, dim3(unsigned(T * nh), unsigned(splits)), dim3(256), 0, s,
                                        q, ldq, k, ldk, v, ldv, pos, nh, nh / nkv, scale, ws);
  else
    (void)kernels::launch_pdl_unchecked(k_decode_attn_part, dim3(unsigned(T * nh), unsigned(splits)), dim3(256), 0, s, q,
                                        ldq, k, ldk, v, ldv, pos, nh, nh / nkv, dk, dv, scale, ws);
  (void)kernels::launch_pdl_unchecked(k_decode_attn_combine, dim3(unsigned(T * nh)), dim3(128), 0, s, ws, splits, dv, o,
                                      ldo, nh, pos, h128);
}


void masked_softmax(float* x, int64_t rows, int64_t S, const int64_t* pos, float scale, cudaStream_t s) {
  if (rows * S > 0) k_masked_softmax<<<unsigned(rows), 256, 0, s>>>(x, S, pos, scale);
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


}  // namespace ling::cuda
