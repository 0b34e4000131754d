// RMSNorm / GroupRMSNorm, residual add + RMSNorm, and the Lightning output gate (include/ling/kernels/norm.h).
// One CTA per row (per row and group for GroupRMSNorm), fp64 sum of squares, then (x · inv) · w as ref::rms_norm.
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/reduce.cuh"
#include "ling/kernels/norm.h"

namespace ling::kernels {
namespace {

// grid (rows, groups), gs values per group.
__global__ void k_rms_norm(const float* x, const float* w, float* y, int64_t gs, int64_t ldx, int64_t ldy,
                           double eps) {
  pdl_enter();
  __shared__ double red[32];
  const float* xr = x + blockIdx.x * ldx + blockIdx.y * gs;
  float* yr = y + blockIdx.x * ldy + blockIdx.y * gs;
  const float* wr = w + blockIdx.y * gs;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) ss += double(xr[i]) * double(xr[i]);
  ss = block_sum_d(ss, red);
  const float inv = inv_rms(ss, gs, eps);
  for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) yr[i] = (xr[i] * inv) * wr[i];
}

// grid rows: h += d0 (when given), h += d; y = h / rms(h) · w.
__global__ void k_add_rms_norm(float* h, const float* d0, const float* d, const float* w, float* y, int64_t dim,
                               double eps) {
  pdl_enter();
  __shared__ double red[32];
  float* hr = h + blockIdx.x * dim;
  const float* dr = d ? d + blockIdx.x * dim : nullptr;
  const float* d0r = d0 ? d0 + blockIdx.x * dim : nullptr;
  float* yr = y + blockIdx.x * dim;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = d0r ? hr[i] + d0r[i] : hr[i];
    if (dr) v = v + dr[i];
    if (dr || d0r) hr[i] = v;
    ss += double(v) * double(v);
  }
  ss = block_sum_d(ss, red);
  const float inv = inv_rms(ss, dim, eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (hr[i] * inv) * w[i];
}

// The same with float4 accesses and the row held in registers (dim % 4 == 0, dim ≤ 16384, 1024 threads): every
// load of the row is in flight at once instead of one latency per strided step; the weights load before the wait.
// kLateTrigger: the next kernel is let in only once the row has been read and reduced (wait, load, reduce,
// trigger), so that its CTAs' early weight loads do not queue ahead of this row's loads; the same values.
template <bool kLateTrigger>
__global__ void __launch_bounds__(1024) k_add_rms_norm_v(float* h, const float* d0, const float* d, const float* w,
                                                         float* y, int64_t dim, double eps) {
  __shared__ double red[32];
  const int64_t n4 = dim / 4;
  // The norm weights (constant) before the wait: a decode step reads them once, from memory, and that round trip
  // would otherwise follow the reduction.
  const float4* wr = reinterpret_cast<const float4*>(w);
  float4 g[4];
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4) g[u] = wr[i];
  }
  if constexpr (kLateTrigger) pdl_wait();
  else pdl_enter();
  float4* hr = reinterpret_cast<float4*>(h + blockIdx.x * dim);
  const float4* dr = d ? reinterpret_cast<const float4*>(d + blockIdx.x * dim) : nullptr;
  const float4* d0r = d0 ? reinterpret_cast<const float4*>(d0 + blockIdx.x * dim) : nullptr;
  float4 v[4];
  double ss = 0.0;
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4) v[u] = hr[i];
  }
  // the deltas in order (d0 first: h + d0 rounded, as a separate add would leave it), then h written once
  const float4* deltas[2] = {d0r, dr};
  for (const float4* dl : deltas) {
    if (!dl) continue;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = threadIdx.x + int64_t(u) * 1024;
      if (i < n4) {
        const float4 a = dl[i];
        v[u].x += a.x; v[u].y += a.y; v[u].z += a.z; v[u].w += a.w;
      }
    }
  }
  if (d0r || dr) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = threadIdx.x + int64_t(u) * 1024;
      if (i < n4) hr[i] = v[u];
    }
  }
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4)
      ss += double(v[u].x) * v[u].x + double(v[u].y) * v[u].y + double(v[u].z) * v[u].z + double(v[u].w) * v[u].w;
  }
  ss = block_sum_d(ss, red);
  if constexpr (kLateTrigger) pdl_trigger();
  const float inv = inv_rms(ss, dim, eps);
  float4* yr = reinterpret_cast<float4*>(y + blockIdx.x * dim);
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t i = threadIdx.x + int64_t(u) * 1024;
    if (i < n4)
      yr[i] = make_float4((v[u].x * inv) * g[u].x, (v[u].y * inv) * g[u].y, (v[u].z * inv) * g[u].z,
                          (v[u].w * inv) * g[u].w);
  }
}

// grid (rows, groups): o = GroupRMSNorm(o) · w ⊙ sigmoid(gate) for group blockIdx.y (gs values) of row blockIdx.x —
// the groups of a row in parallel, not one reduction after another (a decode step runs this once per Lightning
// layer on one row).
__global__ void k_group_norm_gate(float* o, const float* w, const float* gate, int64_t width, int64_t ldg,
                                  int64_t gs, double eps) {
  pdl_enter();
  __shared__ double red[32];
  const int64_t g0 = int64_t(blockIdx.y) * gs;
  float* orow = o + blockIdx.x * width + g0;
  const float* grow = gate + blockIdx.x * ldg + g0;
  const float* wg = w + g0;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) ss += double(orow[i]) * double(orow[i]);
  ss = block_sum_d(ss, red);
  const float inv = inv_rms(ss, gs, eps);
  for (int64_t i = threadIdx.x; i < gs; i += blockDim.x) {
    const float v = (orow[i] * inv) * wg[i];
    orow[i] = v * sigmoid(grow[i]);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  LING_CHECK(p.rows >= 0 && p.dim > 0 && p.groups > 0 && p.dim % p.groups == 0, "launch_rms_norm: dim ", p.dim,
             " is not a positive multiple of groups ", p.groups);
  LING_CHECK(p.rows < (int64_t(1) << 31) && p.groups < 65536, "launch_rms_norm: ", p.rows, " rows × ", p.groups,
             " groups exceed one grid");
  if (p.rows == 0) return;
  LING_CHECK(p.x && p.w && p.y, "launch_rms_norm: x, w or y is null");
  launch_pdl(k_rms_norm, dim3(unsigned(p.rows), unsigned(p.groups)), 256, 0, stream, 
      p.x, p.w, p.y, p.dim / p.groups, p.ldx ? p.ldx : p.dim, p.ldy ? p.ldy : p.dim, p.eps);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_add_rms_norm(const AddRmsNormParams& p, cudaStream_t stream, bool late_trigger, const float* d_first) {
  LING_CHECK(p.rows >= 0 && p.rows < (int64_t(1) << 31) && p.dim > 0, "launch_add_rms_norm: rows ", p.rows,
             ", dim ", p.dim, " out of range");
  if (p.rows == 0) return;
  LING_CHECK(p.h && p.w && p.y, "launch_add_rms_norm: h, w or y is null");
  if (p.dim % 4 == 0 && p.dim <= 4 * 4 * 1024 && aligned16(p.h) && (!p.d || aligned16(p.d)) && aligned16(p.w) &&
      aligned16(p.y) && (!d_first || aligned16(d_first)))
    launch_pdl(late_trigger ? k_add_rms_norm_v<true> : k_add_rms_norm_v<false>, unsigned(p.rows), 1024, 0, stream,
               p.h, d_first, p.d, p.w, p.y, p.dim, p.eps);
  else
    launch_pdl(k_add_rms_norm, unsigned(p.rows), 512, 0, stream, p.h, d_first, p.d, p.w, p.y, p.dim, p.eps);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_group_norm_gate(const GroupNormGateParams& p, cudaStream_t stream) {
  LING_CHECK(p.rows >= 0 && p.rows < (int64_t(1) << 31) && p.width > 0 && p.groups > 0 && p.width % p.groups == 0,
             "launch_group_norm_gate: width ", p.width, " is not a positive multiple of groups ", p.groups);
  if (p.rows == 0) return;
  LING_CHECK(p.o && p.w && p.gate, "launch_group_norm_gate: o, w or gate is null");
  const int64_t ldg = p.ld_gate ? p.ld_gate : p.width;
  LING_CHECK(ldg >= p.width, "launch_group_norm_gate: ld_gate ", ldg, " is smaller than width ", p.width);
  LING_CHECK(p.groups < 65536, "launch_group_norm_gate: ", p.groups, " groups exceed one grid");
  launch_pdl(k_group_norm_gate, dim3(unsigned(p.rows), unsigned(p.groups)), 256, 0, stream, p.o, p.w, p.gate, p.width,
             ldg, p.width / p.groups, p.eps);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
