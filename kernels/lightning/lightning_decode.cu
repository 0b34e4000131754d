// Lightning decode step (architecture.md §2.6 step 7): B sequences, one token each, fp32 state
// [B, nh, 128, 128] updated in place: S = e^{g_h} S + kᵀ v; o = (scale · q) S. Bandwidth-bound: every state byte
// is read once and written once with streaming (evict-first) accesses.
// One CTA per (head, sequence): 256 threads, thread = (column quad c4 = 4·(tid % 32), row group tid / 32);
// each thread keeps its 16 rows (rg + 8i) of float4 in flight, then the 8 row groups reduce o in shared memory.
// Folds for decode steps (LightningDecodeParams): q/k norm + RoPE before the update, the group output gate by the
// last CTA of each group after it — bit for bit the separate launches' results, two launches fewer per layer.
// Constants (norm and gate weights) load before the programmatic-launch wait, v and the gate values right after it.
#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/reduce.cuh"
#include "ling/kernels/lightning.h"
#include "rope/rope_math.cuh"

namespace ling::kernels {
namespace {

constexpr int D = 128;
constexpr int kGateVals = 8;  // output-gate values per thread held in registers (groups of up to 2,048)

// kFold: the qk and gate folds of LightningDecodeParams (each still switched by its pointers).
template <bool kFold>
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
  // The output gate's constants (its weights) and, after the wait, its gate values, for the whole group in
  // registers of every CTA: the group's last CTA then only reads o back (groups of up to 256·kGateVals values).
  const int64_t hpg = kFold && p.gate_w ? p.nh / p.groups : 1, grp = h / hpg, gs = hpg * D;
  const bool gate_regs = kFold && p.gate_w && gs <= 256 * kGateVals;
  float wgv[kGateVals], gv[kGateVals];
  if (gate_regs)
#pragma unroll
    for (int j = 0; j < kGateVals; ++j)
      if (tid + 256 * j < gs) wgv[j] = p.gate_w[grp * gs + tid + 256 * j];
  float4 v;
  if constexpr (kFold) {
    // Thread t < 128: element t of q; t ≥ 128: element t − 128 of k. The rotation factors first (double trig),
    // as launch_qk_norm_rope does, so that they overlap the loads.
    __shared__ double ssum[8];
    const int e = tid & (D - 1);
    const bool is_q = tid < D;
    const int64_t half = p.rope_dim / 2;
    float c0 = 0.0f, s0 = 0.0f, pf = 0.0f;
    if (p.inv_freq) {
      pf = float(p.pos[b]);
      if (e < 2 * half) rope_cs(pf, p.inv_freq, e < half ? e : e - half, p.rope_factor, c0, s0);
    }
    const float* w = is_q ? p.q_norm : p.k_norm;
    const float w_e = w ? w[e] : 0.0f;  // constant: before the wait
    pdl_enter();
    float x = is_q ? p.q[b * ldq + h * D + e] : p.k[b * ldk + h * D + e];
    v = *reinterpret_cast<const float4*>(p.v + b * ldv + h * D + c4);
    if (gate_regs) {
      const float* grow = p.gate + b * (p.ld_gate ? p.ld_gate : p.nh * D) + grp * gs;
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) gv[j] = grow[tid + 256 * j];
    }
    float* buf = is_q ? qs : ks;
    if (w) {  // block_sum_d over the head's 128 threads: lanes by xor shuffles, then its 4 warps in order
      double sq = double(x) * double(x);
      for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
      if ((tid & 31) == 0) ssum[tid >> 5] = sq;
    }
    __syncthreads();
    if (w) {
      const int w0 = is_q ? 0 : 4;
      double ss = 0.0;
      for (int i = 0; i < 4; ++i) ss += ssum[w0 + i];
      const float inv = float(1.0 / sqrt(ss / double(D) + p.qk_eps));
      x = (x * inv) * w_e;
    }
    buf[e] = x;
    __syncthreads();
    if (p.inv_freq && e < 2 * half) x = rope_rotated(buf, e, half, c0, s0, p.rope_interleaved);
    __syncthreads();  // every rotation read its pair before any is written
    buf[e] = x;
  } else {
    pdl_enter();
    v = *reinterpret_cast<const float4*>(p.v + b * ldv + h * D + c4);
    if (tid < D) {
      qs[tid] = p.q[b * ldq + h * D + tid];
      ks[tid] = p.k[b * ldk + h * D + tid];
    }
  }
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
  if constexpr (kFold) {
    if (!p.gate_w) return;
    // The output gate of this head's group, by the group's last CTA to get here: o of the whole group read back
    // through L2, then launch_group_norm_gate's sums (256 threads, strided, block_sum_d) and products.
    __shared__ bool last;
    __shared__ double gred[32];
    __syncthreads();
    if (tid == 0) {
      __threadfence();  // this head's o before the count
      last = atomicAdd(p.counters + b * p.groups + grp, 1u) == unsigned(hpg - 1);
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    float* orow = p.o + b * ldo + grp * gs;
    const float* grow = p.gate + b * (p.ld_gate ? p.ld_gate : p.nh * D) + grp * gs;
    const float* wg = p.gate_w + grp * gs;
    double ss = 0.0;
    float ov[kGateVals];
    if (gate_regs) {  // the same sums and products, o read once
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) ov[j] = __ldcg(orow + tid + 256 * j);
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) ss += double(ov[j]) * double(ov[j]);
    } else {
      for (int64_t i = tid; i < gs; i += 256) {
        const double o = double(__ldcg(orow + i));
        ss += o * o;
      }
    }
    ss = block_sum_d(ss, gred);
    const float inv = float(1.0 / sqrt(ss / double(gs) + p.gate_eps));
    if (gate_regs) {
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) {
          const float o = (ov[j] * inv) * wgv[j];
          orow[tid + 256 * j] = o * (1.0f / (1.0f + expf(-gv[j])));
        }
    } else {
      for (int64_t i = tid; i < gs; i += 256) {
        const float o = (__ldcg(orow + i) * inv) * wg[i];
        orow[i] = o * (1.0f / (1.0f + expf(-grow[i])));
      }
    }
    if (tid == 0) p.counters[b * p.groups + grp] = 0;  // ready for the next launch
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
  const bool qk = p.inv_freq || p.q_norm || p.k_norm, gate = p.gate_w != nullptr;
  if (qk) {
    LING_CHECK(p.pos || !p.inv_freq, "lightning decode: RoPE needs positions");
    LING_CHECK(p.rope_dim >= 0 && p.rope_dim % 2 == 0 && p.rope_dim <= D, "lightning decode: rope_dim ", p.rope_dim,
               " must be even and at most ", D);
  }
  if (gate) {
    LING_CHECK(p.gate && p.counters, "lightning decode: the output gate needs gate and counters");
    LING_CHECK(p.groups >= 1 && p.nh % p.groups == 0, "lightning decode: ", p.nh, " heads in ", p.groups,
               " groups");
    LING_CHECK(ldo == w, "lightning decode: the output gate needs packed o rows (ldo = nh·128)");
  }
  if (qk || gate)
    launch_pdl(lightning_decode_kernel<true>, dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, p, ldq, ldk, ldv,
               ldo);
  else
    launch_pdl(lightning_decode_kernel<false>, dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, p, ldq, ldk, ldv,
               ldo);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
