// Lightning decode step (architecture.md §2.6 step 7): B sequences, one token each, fp32 state
// [B, nh, 128, 128] updated in place: S = e^{g_h} S + kᵀ v; o = (scale · q) S. Bandwidth-bound: every state byte
// is read once and written once with streaming (evict-first) accesses.
// One CTA per (head, sequence): 256 threads, thread = (column quad c4 = 4·(tid % 32), row group tid / 32);
// each thread keeps its 16 rows (rg + 8i) of float4 in flight, then the 8 row groups reduce o in shared memory.
#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/lightning.h"

namespace ling::kernels {
namespace {

constexpr int D = 128;

__global__ void __launch_bounds__(256) lightning_decode_kernel(const LightningDecodeParams p, int64_t ldq, int64_t ldk,
                                                               int64_t ldv, int64_t ldo) {
  __shared__ float qs[D], ks[D];
  __shared__ float4 red[8][D / 4];
  const int64_t h = blockIdx.x, b = blockIdx.y;
  const int tid = threadIdx.x, c4 = (tid & 31) * 4, rg = tid >> 5;
  // The state (written by this layer's previous step, never by the kernels just before this one) is in flight
  // before waiting for q, k and v: with programmatic launch its loads overlap the previous kernel's tail.
  float* S = p.state + (b * p.nh + h) * D * D;
  float4 s[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) s[i] = __ldcs(reinterpret_cast<const float4*>(S + (rg + 8 * i) * D + c4));
  const float decay = expf(p.g[h]);
  pdl_enter();
  if (tid < D) {
    qs[tid] = p.q[b * ldq + h * D + tid];
    ks[tid] = p.k[b * ldk + h * D + tid];
  }
  const float4 v = *reinterpret_cast<const float4*>(p.v + b * ldv + h * D + c4);
  __syncthreads();
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int row = rg + 8 * i;
    const float kr = ks[row], qr = qs[row];
    float4 x = s[i];
    x.x = decay * x.x + kr * v.x;
    x.y = decay * x.y + kr * v.y;
    x.z = decay * x.z + kr * v.z;
    x.w = decay * x.w + kr * v.w;
    acc.x += qr * x.x;
    acc.y += qr * x.y;
    acc.z += qr * x.z;
    acc.w += qr * x.w;
    __stcs(reinterpret_cast<float4*>(S + row * D + c4), x);
  }
  red[rg][tid & 31] = acc;
  __syncthreads();
  if (tid < D) {
    const float* r = reinterpret_cast<const float*>(&red[0][0]);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) sum += r[j * D + tid];
    p.o[b * ldo + h * D + tid] = sum * p.scale;
  }
}

}  // namespace

void launch_lightning_decode(const LightningDecodeParams& p, cudaStream_t stream) {
  LING_CHECK(p.B >= 0 && p.nh >= 1, "lightning decode: B = ", p.B, ", nh = ", p.nh, " (need B >= 0, nh >= 1)");
  if (p.B == 0) return;
  LING_CHECK(p.q && p.k && p.v && p.o && p.state && p.g, "lightning decode: a null q/k/v/o/state/g pointer");
  LING_CHECK(p.B <= 65535 && p.nh <= int64_t(1) << 30, "lightning decode: B = ", p.B, " exceeds the grid limit 65535");
  const int64_t w = p.nh * D;
  const int64_t ldq = p.ldq ? p.ldq : w, ldk = p.ldk ? p.ldk : w, ldv = p.ldv ? p.ldv : w, ldo = p.ldo ? p.ldo : w;
  LING_CHECK(ldv % 4 == 0 && reinterpret_cast<uintptr_t>(p.v) % 16 == 0 &&
                 reinterpret_cast<uintptr_t>(p.state) % 16 == 0,
             "lightning decode: v and state must be 16-byte aligned (v row stride a multiple of 4)");
  launch_pdl(lightning_decode_kernel, dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, p, ldq, ldk, ldv, ldo);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
