// Fused element-wise and norm kernels of the CUDA backend (architecture.md §2.2, §2.5, §2.6): residual add +
// RMSNorm with the row in registers, per-head QK-norm + NeoX RoPE in one launch, the Lightning output gate with
// its GroupRMSNorm (or without it, for tensor-parallel ranks whose groups span ranks), row scaling, and the
// profiler's spin kernel. fp64 sums of squares like ref::rms_norm.
#include <cuda_bf16.h>

#include <cmath>

#include "device_util.cuh"
#include "kernels.cuh"

namespace ling::cuda {
namespace {

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


__global__ void k_spin(int64_t ns) {
  const long long t0 = clock64();
  // ~1.5 GHz: cycles ≈ 1.5·ns; good enough to hold the stream while the host queues a step.
  while (clock64() - t0 < 1.5 * double(ns)) __nanosleep(1000);
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




void spin(int64_t ns, cudaStream_t s) { k_spin<<<1, 1, 0, s>>>(ns); }


}  // namespace ling::cuda
