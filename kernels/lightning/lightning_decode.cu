// Lightning decode step (architecture.md §2.6 step 7): B sequences, one token each, fp32 state
// [B, nh, 128, 128] updated in place: S = e^{g_h} S + kᵀ v; o = (scale · q) S. Bandwidth-bound: every state byte
// is read once and written once with streaming (evict-first) accesses.
// One CTA per (head, sequence): 256 threads, thread = (column quad c4 = 4·(tid % 32), row group tid / 32);
// each thread keeps its 16 rows (rg + 8i) of float4 in flight, then the 8 row groups reduce o in shared memory.
// Folds for decode steps (LightningDecodeParams): q/k norm + RoPE before the update, the group output gate by the
// last CTA of each group after it, or (groups of at most 8 heads) by every CTA of a thread-block cluster of the
// group's heads that adds the heads' sums of squares through distributed shared memory — the separate launches'
// arithmetic (the cluster sums the group's squares head by head: equal to the separate kernel's sum up to double
// rounding), two launches fewer per layer. In the cluster form the state is stored after o is out (state_early:
// as each row is updated).
// Constants (norm and gate weights) load before the programmatic-launch wait, v and the gate values right after it.
#include "common/check.h"
#include "common/cluster.cuh"
#include "common/launch.cuh"
#include "ling/kernels/reduce.cuh"
#include "ling/kernels/lightning.h"
#include "rope/rope_math.cuh"

namespace ling::kernels {
namespace {

constexpr int D = 128;
constexpr int kGateVals = 8;  // output-gate values per thread held in registers (groups of up to 2,048)

// kFold: the qk and gate folds of LightningDecodeParams (each still switched by its pointers). kCluster (with the
// gate fold): the CTAs of a group's heads form a thread-block cluster and exchange their heads' sums of squares
// through distributed shared memory; each gates its own head (no counter, no read-back of o). kStateEarly (with
// kCluster): LightningDecodeParams::state_early.
template <bool kFold, bool kCluster = false, bool kStateEarly = false>
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
  const bool gate_regs = kFold && !kCluster && p.gate_w && gs <= 256 * kGateVals;
  float wgv[kGateVals], gv[kGateVals];
  // kCluster: thread t < 128 gates element t of this head: its weight now, its gate value after the wait.
  const int64_t ld_gate = p.ld_gate ? p.ld_gate : p.nh * D;
  float wg_own = 0.0f, g_own = 0.0f;
  if (kCluster && tid < D) wg_own = p.gate_w[h * D + tid];
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
    pdl_enter_or_wait(p.late_trigger);
    float x = is_q ? p.q[b * ldq + h * D + e] : p.k[b * ldk + h * D + e];
    v = *reinterpret_cast<const float4*>(p.v + b * ldv + h * D + c4);
    if (gate_regs) {
      const float* grow = p.gate + b * ld_gate + grp * gs;
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) gv[j] = grow[tid + 256 * j];
    }
    if (kCluster && tid < D) g_own = p.gate[b * ld_gate + h * D + tid];
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
      const float inv = inv_rms(ss, D, p.qk_eps);
      x = (x * inv) * w_e;
    }
    buf[e] = x;
    __syncthreads();
    if (p.inv_freq && e < 2 * half) x = rope_rotated(buf, e, half, c0, s0, p.rope_interleaved);
    __syncthreads();  // every rotation read its pair before any is written
    buf[e] = x;
  } else {
    pdl_enter_or_wait(p.late_trigger);
    v = *reinterpret_cast<const float4*>(p.v + b * ldv + h * D + c4);
    if (tid < D) {
      qs[tid] = p.q[b * ldq + h * D + tid];
      ks[tid] = p.k[b * ldk + h * D + tid];
    }
  }
  __syncthreads();
  // kCluster: the update stays in registers until o is out (the state's 64 KB of stores after the gate's cluster
  // exchange) unless state_early; otherwise each row is stored as it is updated.
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
    if (kCluster && !kStateEarly) s[i] = x;
    else __stcs(reinterpret_cast<float4*>(S + row * D + c4), x);
  }
  if (p.late_trigger) pdl_trigger();  // q, k and v are in (the update used them)
  red[rg][tid & 31] = acc;
  __syncthreads();
  float ov = 0.0f;
  if (tid < D) {
    const float* r = reinterpret_cast<const float*>(&red[0][0]);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) sum += r[j * D + tid];
    ov = sum * p.scale;
  }
  if constexpr (kCluster) {
    // The group's sum of squares: this head's (warps 0–3, lanes by xor shuffles, warps in order), published in
    // shared memory; after the cluster barrier every thread adds the group's heads in rank order from their
    // CTAs' shared memory. The gate as launch_group_norm_gate's products; then the state.
    __shared__ double hred[4], head_ss;
    double sq = double(ov) * double(ov);
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    if (tid < D && (tid & 31) == 0) hred[tid >> 5] = sq;
    __syncthreads();
    if (tid == 0) head_ss = ((hred[0] + hred[1]) + hred[2]) + hred[3];
    cluster_arrive_release();
    cluster_wait_acquire();
    double ss = 0.0;
    for (int r = 0; r < int(hpg); ++r) ss += ld_dsmem_f64(&head_ss, unsigned(r));
    cluster_arrive_release();  // done with the other CTAs' shared memory (waited for before exit)
    const float inv = inv_rms(ss, gs, p.gate_eps);
    if (tid < D) {
      const float o = (ov * inv) * wg_own;
      p.o[b * ldo + h * D + tid] = o * sigmoid(g_own);
    }
    if constexpr (!kStateEarly)
#pragma unroll
      for (int i = 0; i < 16; ++i) __stcs(reinterpret_cast<float4*>(S + (rg + 8 * i) * D + c4), s[i]);
    cluster_wait_acquire();
    return;
  }
  if (tid < D) p.o[b * ldo + h * D + tid] = ov;
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
    const float* grow = p.gate + b * ld_gate + grp * gs;
    const float* wg = p.gate_w + grp * gs;
    double ss = 0.0;
    float og[kGateVals];
    if (gate_regs) {  // the same sums and products, o read once
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) og[j] = __ldcg(orow + tid + 256 * j);
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) ss += double(og[j]) * double(og[j]);
    } else {
      for (int64_t i = tid; i < gs; i += 256) {
        const double o = double(__ldcg(orow + i));
        ss += o * o;
      }
    }
    ss = block_sum_d(ss, gred);
    const float inv = inv_rms(ss, gs, p.gate_eps);
    if (gate_regs) {
#pragma unroll
      for (int j = 0; j < kGateVals; ++j)
        if (tid + 256 * j < gs) {
          const float o = (og[j] * inv) * wgv[j];
          orow[tid + 256 * j] = o * sigmoid(gv[j]);
        }
    } else {
      for (int64_t i = tid; i < gs; i += 256) {
        const float o = (__ldcg(orow + i) * inv) * wg[i];
        orow[i] = o * sigmoid(grow[i]);
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
  // The gate by a cluster of the group's CTAs where the group has at most kLightningFoldClusterMax heads (the portable
  // cluster size), else by the group's last CTA through the counters.
  const bool cluster = gate && p.cluster && p.groups >= 1 && p.nh % p.groups == 0 &&
                       p.nh / p.groups <= kLightningFoldClusterMax;
  if (gate) {
    LING_CHECK(p.gate, "lightning decode: the output gate needs the gate values (gate is null)");
    LING_CHECK(p.counters || cluster, "lightning decode: the output gate by each group's last CTA needs counters "
               "(null; the cluster form, groups of at most ", kLightningFoldClusterMax, " heads, needs none)");
    LING_CHECK(p.groups >= 1 && p.nh % p.groups == 0, "lightning decode: ", p.nh, " heads in ", p.groups,
               " groups");
    LING_CHECK(ldo == w, "lightning decode: the output gate needs packed o rows (ldo = nh·128)");
  }
  if (cluster)
    launch_pdl_cluster(p.state_early ? lightning_decode_kernel<true, true, true> : lightning_decode_kernel<true, true>,
                       dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, unsigned(p.nh / p.groups), p, ldq, ldk,
                       ldv, ldo);
  else if (qk || gate)
    launch_pdl(lightning_decode_kernel<true>, dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, p, ldq, ldk, ldv,
               ldo);
  else
    launch_pdl(lightning_decode_kernel<false>, dim3(unsigned(p.nh), unsigned(p.B)), 256, 0, stream, p, ldq, ldk, ldv,
               ldo);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
