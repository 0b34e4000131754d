// Lightning kernels vs lib/ref (architecture.md §2.6): the chunked prefill (bf16 q/k/v, fp32 state in/out, bf16
// and fp32 outputs) against ref::lightning_chunked on the same bf16-rounded inputs, and the batched decode step
// against ref::lightning_recurrent per sequence. Shapes: 1 token, primes, non-multiples of the 64-token chunk,
// forced sequence blocks (the cross-block state scan), Ling-2.5-1T's 64 heads and one TP8 shard (8 heads); the
// decode kernel's folds (q/k norm + RoPE, output gate) against the separate kernels, bit for bit.
// Tolerances: fp32 outputs and state rtol 1e-4 (kernel_test_util.h), bf16 outputs by house-style.md §4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernel_test_util.h"
#include "lightning_params.h"
#include "ling/kernels/norm.h"
#include "ling/kernels/rope.h"

namespace ling::test {
namespace {

constexpr int64_t D = kernels::kLightningHeadDim;

// Ling's log decays for nh heads at layer-decay factor ~1: g_h = −2^(−8(h+1)/nh) (ALiBi slopes, §2.6 step 5).
std::vector<float> log_decays(int64_t nh) {
  std::vector<float> g(static_cast<size_t>(nh));
  for (int64_t h = 0; h < nh; ++h) g[size_t(h)] = -float(std::pow(2.0, -8.0 * double(h + 1) / double(nh)));
  return g;
}

// Rounding-flip bound of the bf16-operand form: kernel and reference round (nearly) the same fp32 values to bf16,
// and a value within an fp32 error of a rounding boundary rounds one ulp (≤ 2^-7 relative) apart. Per output
// element (t, h, b) in chunk [c0, c0 + 64): 2^-7 · scale · (Σ_{c0≤j≤t} |P_tj|·|v_jb| + e^{g(t−c0+1)} Σ_a |q_ta|·|S_ab|)
// with P_tj = (q_t·k_j)·e^{g(t−j)} and S the state at the chunk start (from the low-precision reference).
std::vector<float> flip_bounds(const kernels::LightningPrefillParams& p, const std::vector<float>& q,
                               const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>& g,
                               std::vector<float> state) {
  const int64_t C = kernels::kLightningChunk, w = p.nh * D;
  std::vector<float> bound(size_t(p.T * w), 0.0f), scratch(size_t(C * w));
  for (int64_t c0 = 0; c0 < p.T; c0 += C) {
    const int64_t n = std::min(C, p.T - c0);
    for (int64_t h = 0; h < p.nh; ++h) {
      const float* S = state.data() + h * D * D;
      for (int64_t i = 0; i < n; ++i) {
        const float* qi = q.data() + (c0 + i) * w + h * D;
        std::vector<double> b(size_t(D), 0.0);
        const double di = std::exp(double(g[size_t(h)]) * double(i + 1));
        for (int64_t a = 0; a < D; ++a)
          for (int64_t c = 0; c < D; ++c) b[size_t(c)] += di * std::fabs(double(qi[a])) * std::fabs(double(S[a * D + c]));
        for (int64_t j = 0; j <= i; ++j) {
          const float* kj = k.data() + (c0 + j) * w + h * D;
          const float* vj = v.data() + (c0 + j) * w + h * D;
          double dot = 0.0;
          for (int64_t a = 0; a < D; ++a) dot += double(qi[a]) * double(kj[a]);
          const double pij = std::fabs(dot * std::exp(double(g[size_t(h)]) * double(i - j)));
          for (int64_t c = 0; c < D; ++c) b[size_t(c)] += pij * std::fabs(double(vj[c]));
        }
        for (int64_t c = 0; c < D; ++c)
          bound[size_t((c0 + i) * w + h * D + c)] = float(std::ldexp(b[size_t(c)] * double(p.scale), -7));
      }
    }
    // Advance the state over this chunk with the low-precision reference (its chunks are the kernel's).
    kernels::LightningPrefillParams pc = p;
    pc.T = n;
    ref::LightningParams r = to_ref(pc, {q.data() + c0 * w, k.data() + c0 * w, v.data() + c0 * w, g.data(),
                                         scratch.data(), state.data()});
    ref::lightning_chunked(r);
  }
  return bound;
}

// |a − r| ≤ 2e-2·|r| + 1e-3 + bound per element (the bf16 rule plus the rounding-flip bound), cosine ≤ 1e-5.
::testing::AssertionResult close_bf16_bounded(const std::string& name, const std::vector<float>& a,
                                              const std::vector<float>& r, const std::vector<float>& bound) {
  if (a.size() != r.size() || a.size() != bound.size()) return ::testing::AssertionFailure() << name << ": sizes differ";
  size_t bad = 0, worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double lim = 2e-2 * std::fabs(double(r[i])) + 1e-3 + double(bound[i]);
    const double excess = std::fabs(double(a[i]) - double(r[i])) - lim;
    if (!(excess <= 0.0)) ++bad;
    if (excess > worst_excess || std::isnan(excess)) worst_excess = excess, worst = i;
  }
  const ref::CompareReport cos = ref::compare_f32(name, {int64_t(a.size())}, a.data(), r.data(), tol(1e30, 1e30, 1e-5));
  std::printf("  %s %s: %zu outside the bf16 rule + flip bound (worst [%zu] a=%.4g ref=%.4g bound=%.3g); %s\n",
              bad || !cos.ok ? "FAIL" : "ok  ", name.c_str(), bad, worst, double(a[worst]), double(r[worst]),
              double(bound[worst]), cos.line().c_str());
  if (bad == 0 && cos.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << bad << " elements outside the bound; " << cos.line();
}

struct PrefillCase {
  int64_t T, nh, blocks;
  bool o_fp32;
  bool exact = true;  // false: bf16 MMA operands, against the bf16-operand reference by the bf16 rules
};

void run_prefill(const PrefillCase& c, uint64_t seed) {
  const size_t n = size_t(c.T * c.nh * D), ns = size_t(c.nh * D * D);
  std::vector<float> q = uniform(n, -1, 1, seed), k = uniform(n, -1, 1, seed + 1), v = uniform(n, -1, 1, seed + 2);
  std::vector<float> state = uniform(ns, -0.5f, 0.5f, seed + 3), g = log_decays(c.nh);
  const auto qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);

  DeviceBuffer dq(n * 2), dk(n * 2), dv(n * 2), dout(n * (c.o_fp32 ? 4 : 2)), dstate(ns * 4), dg(g.size() * 4);
  dq.upload(qb), dk.upload(kb), dv.upload(vb), dstate.upload(state), dg.upload(g);
  int dev = 0, sms = 0;
  TEST_CUDA(cudaGetDevice(&dev));
  TEST_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  DeviceBuffer ws(kernels::lightning_prefill_workspace_bytes(c.T, c.nh, c.blocks, sms));

  kernels::LightningPrefillParams p;
  p.q = dq.as<uint16_t>(), p.k = dk.as<uint16_t>(), p.v = dv.as<uint16_t>(), p.o = dout.ptr;
  p.state = dstate.as<float>(), p.g = dg.as<float>(), p.workspace = ws.ptr;
  p.T = c.T, p.nh = c.nh, p.scale = 1.0f / std::sqrt(float(D)), p.o_fp32 = c.o_fp32, p.blocks = c.blocks;
  p.exact = c.exact;
  kernels::launch_lightning_prefill(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());

  std::vector<float> ref_o(n), ref_state = state;
  ref::lightning_chunked(to_ref(p, {q.data(), k.data(), v.data(), g.data(), ref_o.data(), ref_state.data()}));

  const std::vector<float> out = c.o_fp32 ? dout.download<float>(n) : from_bf16(dout.download<uint16_t>(n));
  const std::string tag = "T=" + std::to_string(c.T) + " nh=" + std::to_string(c.nh) +
                          " blocks=" + std::to_string(kernels::lightning_prefill_blocks(c.T, c.nh, c.blocks, sms)) +
                          (c.exact ? "" : " bf16 operands");
  if (!c.exact) {
    EXPECT_TRUE(close_bf16("state " + tag, dstate.download<float>(ns), ref_state));
    // bf16 outputs add their own rounding (half an ulp of the output) to the flip bound.
    std::vector<float> bound = flip_bounds(p, q, k, v, g, state);
    if (!c.o_fp32)
      for (size_t i = 0; i < bound.size(); ++i) bound[i] += std::ldexp(std::fabs(ref_o[i]), -8);
    EXPECT_TRUE(close_bf16_bounded("o " + tag, out, ref_o, bound));
    return;
  }
  EXPECT_TRUE(close_f32("state " + tag, dstate.download<float>(ns), ref_state));
  if (c.o_fp32)
    EXPECT_TRUE(close_f32("o (fp32) " + tag, out, ref_o));
  else
    EXPECT_TRUE(close_bf16("o (bf16) " + tag, out, ref_o));
}

TEST(LightningPrefill, AwkwardShapesFp32Out) {
  SKIP_WITHOUT_CUDA();
  for (const PrefillCase& c : {PrefillCase{1, 1, 0, true}, PrefillCase{1, 3, 0, true}, PrefillCase{63, 2, 0, true},
                               PrefillCase{64, 3, 0, true}, PrefillCase{65, 5, 0, true}, PrefillCase{131, 3, 0, true},
                               PrefillCase{197, 7, 0, true}})
    run_prefill(c, 100 + uint64_t(c.T));
}

TEST(LightningPrefill, SequenceBlocksScan) {
  SKIP_WITHOUT_CUDA();
  // Forced block counts (block boundaries inside the sequence, a short last block) and the automatic choice.
  for (const PrefillCase& c : {PrefillCase{129, 2, 2, true}, PrefillCase{257, 3, 3, true},
                               PrefillCase{1009, 2, 7, true}, PrefillCase{641, 1, 0, true},
                               PrefillCase{1000, 2, 16, false}})
    run_prefill(c, 200 + uint64_t(c.T));
}

TEST(LightningPrefill, LingDims) {
  SKIP_WITHOUT_CUDA();
  run_prefill({320, 64, 0, false}, 301);   // Ling-2.5-1T: 64 heads × 128
  run_prefill({4099, 8, 0, false}, 302);   // one TP8 shard, long prompt, 33 blocks
  run_prefill({2053, 8, 0, true}, 303);
}

// exact = false: bf16 operands for the decayed scores, decayed values and state, against the low-precision
// reference that rounds the same intermediates (ref bf16_operands): the state by the bf16 rules, the outputs by
// the bf16 rules widened by the rounding-flip bound (flip_bounds), at the same awkward shapes, block scans and
// Ling dims.
TEST(LightningPrefill, Bf16OperandsMatchByBf16Rules) {
  SKIP_WITHOUT_CUDA();
  for (const PrefillCase& c : {PrefillCase{1, 3, 0, true, false}, PrefillCase{65, 5, 0, true, false},
                               PrefillCase{1009, 2, 7, true, false}, PrefillCase{1000, 2, 16, false, false},
                               PrefillCase{320, 64, 0, false, false}, PrefillCase{4099, 8, 0, true, false}})
    run_prefill(c, 500 + uint64_t(c.T));
}

TEST(LightningPrefill, RejectsBadParams) {
  SKIP_WITHOUT_CUDA();
  kernels::LightningPrefillParams p;
  p.T = 4, p.nh = 1;
  EXPECT_THROW(kernels::launch_lightning_prefill(p, nullptr), Error);  // null pointers
  p.T = -1;
  EXPECT_THROW(kernels::launch_lightning_prefill(p, nullptr), Error);
}

void run_decode(int64_t B, int64_t nh, int steps, uint64_t seed) {
  const size_t n = size_t(B * nh * D), ns = size_t(B * nh * D * D);
  std::vector<float> state = uniform(ns, -0.5f, 0.5f, seed), g = log_decays(nh);
  DeviceBuffer dq(n * 4), dk(n * 4), dv(n * 4), dout(n * 4), dstate(ns * 4), dg(g.size() * 4);
  dstate.upload(state), dg.upload(g);
  std::vector<float> ref_state = state;
  for (int s = 0; s < steps; ++s) {
    const uint64_t sd = seed + 10 * uint64_t(s + 1);
    std::vector<float> q = uniform(n, -1, 1, sd), k = uniform(n, -1, 1, sd + 1), v = uniform(n, -1, 1, sd + 2);
    dq.upload(q), dk.upload(k), dv.upload(v);
    kernels::LightningDecodeParams p;
    p.q = dq.as<float>(), p.k = dk.as<float>(), p.v = dv.as<float>(), p.o = dout.as<float>();
    p.state = dstate.as<float>(), p.g = dg.as<float>();
    p.B = B, p.nh = nh, p.scale = 1.0f / std::sqrt(float(D));
    kernels::launch_lightning_decode(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    std::vector<float> ref_o(n);
    for (int64_t b = 0; b < B; ++b)
      ref::lightning_recurrent(to_ref(p, {q.data(), k.data(), v.data(), g.data(), ref_o.data(), ref_state.data()}, b));
    const std::string tag = "B=" + std::to_string(B) + " nh=" + std::to_string(nh) + " step " + std::to_string(s);
    EXPECT_TRUE(close_f32("o " + tag, dout.download<float>(n), ref_o));
  }
  EXPECT_TRUE(close_f32("state B=" + std::to_string(B) + " nh=" + std::to_string(nh), dstate.download<float>(ns),
                        ref_state));
}

// The decode folds (LightningDecodeParams::q_norm / inv_freq / gate_w): one launch against the three separate
// kernels on the same rows q‖k‖v‖gate (launch_qk_norm_rope in place, the plain decode kernel, launch_group_norm_gate)
// — o and state equal bit for bit. Ring-mini's shape (16 heads, 4 groups, RoPE on 64 of 128 dims), 64 heads in 8
// groups with interleaved RoPE over all 128, a null k_norm, no RoPE, and 3 sequences at once (per-sequence group
// counters), over several steps on the same counters (each launch leaves them zero).
void run_decode_fold(int64_t B, int64_t nh, int64_t groups, int64_t rope_dim, bool interleaved, bool k_norm,
                     int steps, uint64_t seed, int form) {
  const bool cluster = form > 0;  // form: 0 counters, 1 cluster, 2 cluster storing the state early
  const int64_t inner = nh * D, ld = 4 * inner;  // rows q‖k‖v‖gate
  const size_t nrow = size_t(B * ld), n = size_t(B * inner), ns = size_t(B * nh * D * D);
  std::vector<float> state = uniform(ns, -0.5f, 0.5f, seed), g = log_decays(nh);
  std::vector<float> wq = uniform(size_t(D), 0.5f, 1.5f, seed + 1), wk = uniform(size_t(D), 0.5f, 1.5f, seed + 2);
  std::vector<float> wg = uniform(size_t(inner), 0.5f, 1.5f, seed + 3), inv_freq(size_t(std::max<int64_t>(rope_dim / 2, 1)));
  for (size_t j = 0; j < inv_freq.size(); ++j) inv_freq[j] = float(std::pow(10000.0, -2.0 * double(j) / double(rope_dim ? rope_dim : 2)));
  std::vector<int64_t> pos(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) pos[size_t(b)] = 17 + 1000 * b;
  DeviceBuffer rows_a(nrow * 4), rows_b(nrow * 4), oa(n * 4), ob(n * 4), sa(ns * 4), sb(ns * 4), dg(g.size() * 4);
  DeviceBuffer dwq(wq.size() * 4), dwk(wk.size() * 4), dwg(wg.size() * 4), dfreq(inv_freq.size() * 4), dpos(pos.size() * 8);
  DeviceBuffer counters(size_t(B * groups) * 4);
  sa.upload(state), sb.upload(state), dg.upload(g), dwq.upload(wq), dwk.upload(wk), dwg.upload(wg);
  dfreq.upload(inv_freq), dpos.upload(pos);
  TEST_CUDA(cudaMemset(counters.as<void>(), 0, size_t(B * groups) * 4));
  const std::string tag = "B=" + std::to_string(B) + " nh=" + std::to_string(nh) + " groups=" + std::to_string(groups) +
                          " rope_dim=" + std::to_string(rope_dim) + (interleaved ? " interleaved" : "") +
                          (k_norm ? "" : " no k_norm") + (form == 2 ? " cluster, state early" : cluster ? " cluster" : " counters");
  for (int s = 0; s < steps; ++s) {
    const std::vector<float> rows = uniform(nrow, -1, 1, seed + 10 * uint64_t(s + 1));
    rows_a.upload(rows), rows_b.upload(rows);
    // Separate launches.
    QkNormRopeParams qk;
    qk.x = rows_a.as<float>(), qk.pos = dpos.as<int64_t>(), qk.inv_freq = rope_dim ? dfreq.as<float>() : nullptr;
    qk.wq = dwq.as<float>(), qk.wk = k_norm ? dwk.as<float>() : nullptr;
    qk.rows = B, qk.nq = nh, qk.nk = nh, qk.hd = D, qk.ld = ld, qk.rope_dim = rope_dim, qk.eps = 1e-6;
    qk.attention_factor = 1.0f, qk.interleaved = interleaved;
    kernels::launch_qk_norm_rope(qk, nullptr);
    kernels::LightningDecodeParams p;
    p.q = rows_a.as<float>(), p.k = p.q + inner, p.v = p.q + 2 * inner, p.o = oa.as<float>(), p.state = sa.as<float>();
    p.g = dg.as<float>(), p.B = B, p.nh = nh, p.ldq = p.ldk = p.ldv = ld, p.scale = 1.0f / std::sqrt(float(D));
    kernels::launch_lightning_decode(p, nullptr);
    GroupNormGateParams gn;
    gn.o = oa.as<float>(), gn.w = dwg.as<float>(), gn.gate = rows_a.as<float>() + 3 * inner, gn.rows = B;
    gn.width = inner, gn.groups = groups, gn.ld_gate = ld, gn.eps = 1e-6;
    kernels::launch_group_norm_gate(gn, nullptr);
    // One launch.
    kernels::LightningDecodeParams f = p;
    f.q = rows_b.as<float>(), f.k = f.q + inner, f.v = f.q + 2 * inner, f.o = ob.as<float>(), f.state = sb.as<float>();
    f.pos = dpos.as<int64_t>(), f.inv_freq = rope_dim ? dfreq.as<float>() : nullptr, f.q_norm = dwq.as<float>();
    f.k_norm = k_norm ? dwk.as<float>() : nullptr, f.rope_dim = rope_dim, f.qk_eps = 1e-6, f.rope_interleaved = interleaved;
    f.gate_w = dwg.as<float>(), f.gate = rows_b.as<float>() + 3 * inner, f.ld_gate = ld, f.groups = groups;
    f.gate_eps = 1e-6, f.counters = counters.as<unsigned>(), f.cluster = cluster;
    f.state_early = form == 2;
    kernels::launch_lightning_decode(f, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    ASSERT_EQ(oa.download<float>(n), ob.download<float>(n)) << tag << " o, step " << s;
    ASSERT_EQ(counters.download<unsigned>(size_t(B * groups)), std::vector<unsigned>(size_t(B * groups), 0u)) << tag;
  }
  EXPECT_EQ(sa.download<float>(ns), sb.download<float>(ns)) << tag << " state";
  std::printf("  fold %s: o and state equal to the separate launches over %d steps\n", tag.c_str(), steps);
}

TEST(LightningDecode, FoldsEqualSeparateKernels) {
  SKIP_WITHOUT_CUDA();
  // Each shape with the gate by the group's last CTA (counters) and by a cluster of the group's CTAs (groups of at
  // most kLightningFoldClusterMax heads; larger groups take the counters either way), the latter also storing the
  // state as it is updated (state_early).
  for (const int cluster : {0, 1, 2}) {
    run_decode_fold(1, 16, 4, 64, false, true, 3, 500, cluster);   // Ring-mini-linear-2.0
    run_decode_fold(1, 64, 8, 128, true, true, 2, 510, cluster);   // 8 heads per group: the largest cluster
    run_decode_fold(1, 8, 2, 64, false, false, 2, 520, cluster);   // no k_norm
    run_decode_fold(1, 4, 1, 0, false, true, 2, 530, cluster);     // no RoPE, one group
    run_decode_fold(3, 16, 4, 64, false, true, 2, 540, cluster);   // three sequences
    run_decode_fold(2, 32, 2, 64, false, true, 2, 550, cluster);   // 16 heads per group: counters
    run_decode_fold(1, 6, 6, 64, false, true, 2, 560, cluster);    // one head per group
  }
}

TEST(LightningDecode, MatchesRecurrentReference) {
  SKIP_WITHOUT_CUDA();
  run_decode(1, 1, 1, 400);
  run_decode(3, 5, 3, 401);
  run_decode(7, 64, 2, 402);   // Ling-2.5-1T heads
  run_decode(13, 8, 4, 403);   // TP8 shard
}

}  // namespace
}  // namespace ling::test
