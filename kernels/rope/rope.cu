// Partial RoPE (NeoX / interleaved) and per-head QK-norm + RoPE (include/ling/kernels/rope.h): one CTA per
// (token, head); the rotated pairs are read before any is written, so the in-place update is safe.
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/reduce.cuh"
#include "ling/kernels/rope.h"
#include "rope/rope_math.cuh"

namespace ling::kernels {
namespace {

// grid rows·heads, thread j < half rotates pair j.
__global__ void k_rope(float* x, const int64_t* pos, const float* inv_freq, int64_t heads, int64_t row_stride,
                       int64_t head_stride, int64_t half, float af, bool inter) {
  pdl_enter();
  const int64_t t = blockIdx.x / heads, h = blockIdx.x % heads;
  float* xr = x + t * row_stride + h * head_stride;
  const int64_t j = threadIdx.x;
  float x1 = 0, x2 = 0, c = 0, s = 0;
  if (j < half) {
    rope_cs(float(pos[t]), inv_freq, j, af, c, s);
    x1 = inter ? xr[2 * j] : xr[j];
    x2 = inter ? xr[2 * j + 1] : xr[j + half];
  }
  __syncthreads();
  if (j < half) {
    xr[j] = x1 * c - x2 * s;
    xr[j + half] = x2 * c + x1 * s;
  }
}

// grid (rows, nq + nk), one head of hd values per CTA staged in shared memory: optional RMSNorm (q heads with
// wq, k heads with wk), then RoPE on the first 2·half values.
__global__ void k_qk_norm_rope(float* x, int64_t ld, int64_t nq, int64_t hd, const float* wq, const float* wk,
                               double eps, const int64_t* pos, const float* inv_freq, int64_t half, float af,
                               bool inter) {
  __shared__ double red[32];
  __shared__ float buf[kQkNormRopeMaxHead];
  const int64_t head = blockIdx.y;
  float* xr = x + blockIdx.x * ld + head * hd;
  const float* w = head < nq ? wq : wk;
  // Before the programmatic-launch wait (constant data and positions, which the host wrote): this thread's first
  // rotation factors, so that the double-precision trig overlaps the previous kernel, and its norm weights.
  const float p = float(pos[blockIdx.x]);
  const int64_t i0 = threadIdx.x;
  float c0 = 0.0f, s0 = 0.0f;
  if (i0 < 2 * half) rope_cs(p, inv_freq, i0 < half ? i0 : i0 - half, af, c0, s0);
  constexpr int kW = int(kQkNormRopeMaxHead / 128);  // weights per thread (blockDim 128)
  float wv[kW];
  if (w)
#pragma unroll
    for (int j = 0; j < kW; ++j)
      if (threadIdx.x + 128 * j < hd) wv[j] = w[threadIdx.x + 128 * j];
  pdl_enter();
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = xr[i];
  if (w) {
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) ss += double(buf[i]) * double(buf[i]);
    ss = block_sum_d(ss, red);
    const float inv = inv_rms(ss, hd, eps);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kW; ++j)
      if (threadIdx.x + 128 * j < hd) buf[threadIdx.x + 128 * j] = (buf[threadIdx.x + 128 * j] * inv) * wv[j];
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float v = buf[i];
    if (i < 2 * half) {
      const int64_t j = i < half ? i : i - half;
      float c = c0, s = s0;
      if (i != i0) rope_cs(p, inv_freq, j, af, c, s);
      v = rope_rotated(buf, i, half, c, s, inter);
    }
    xr[i] = v;
  }
}

}  // namespace

void launch_rope(const RopeParams& p, cudaStream_t stream) {
  const int64_t half = p.rope_dim / 2;
  LING_CHECK(p.rope_dim >= 0 && p.rope_dim % 2 == 0 && half <= 1024, "launch_rope: rope_dim ", p.rope_dim,
             " must be even and at most 2048");
  LING_CHECK(p.rows >= 0 && p.heads >= 0 && p.rows * p.heads < (int64_t(1) << 31), "launch_rope: ", p.rows,
             " rows × ", p.heads, " heads exceed one grid");
  if (p.rows * p.heads == 0 || half == 0) return;
  LING_CHECK(p.x && p.pos && p.inv_freq, "launch_rope: x, pos or inv_freq is null");
  const unsigned th = unsigned(((half + 31) / 32) * 32);
  launch_pdl(k_rope, unsigned(p.rows * p.heads), th, 0, stream, p.x, p.pos, p.inv_freq, p.heads, p.row_stride,
                                                         p.head_stride, half, p.attention_factor, p.interleaved);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_qk_norm_rope(const QkNormRopeParams& p, cudaStream_t stream) {
  LING_CHECK(p.hd > 0 && p.hd <= kQkNormRopeMaxHead, "launch_qk_norm_rope: head dim ", p.hd, " outside [1, ",
             kQkNormRopeMaxHead, "]");
  LING_CHECK(p.rope_dim >= 0 && p.rope_dim % 2 == 0 && p.rope_dim <= p.hd, "launch_qk_norm_rope: rope_dim ",
             p.rope_dim, " must be even and at most the head dim ", p.hd);
  LING_CHECK(p.rows >= 0 && p.rows < (int64_t(1) << 31) && p.nq >= 0 && p.nk >= 0 && p.nq + p.nk < 65536,
             "launch_qk_norm_rope: ", p.rows, " rows × ", p.nq + p.nk, " heads exceed one grid");
  if (p.rows * (p.nq + p.nk) == 0) return;
  LING_CHECK(p.x && p.pos && (p.rope_dim == 0 || p.inv_freq), "launch_qk_norm_rope: x, pos or inv_freq is null");
  const int64_t ld = p.ld ? p.ld : (p.nq + p.nk) * p.hd;
  launch_pdl(k_qk_norm_rope, dim3(unsigned(p.rows), unsigned(p.nq + p.nk)), 128, 0, stream, 
      p.x, ld, p.nq, p.hd, p.wq, p.wk, p.eps, p.pos, p.inv_freq, p.rope_dim / 2, p.attention_factor, p.interleaved);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
