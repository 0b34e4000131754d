// ling_ref ops against hand-computed small cases and independent fp64 loops (architecture.md §2):
// RMSNorm/GroupRMSNorm, the fused residual-add norm, Lightning output gate, QK-norm + RoPE and embedding,
// NeoX and interleaved RoPE, YaRN frequencies, GQA attention, Lightning chunked vs
// recurrent (4,096 tokens, output and state), MLA absorbed vs non-absorbed, router ties and group masking,
// sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/compare.h"
#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::ref {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

TEST(RmsNorm, HandComputed) {
  const std::vector<float> x = {1, 2, 3, 4}, w = {1, 1, 2, 0.5f};
  std::vector<float> y(4);
  RmsNormParams p;
  p.x = x.data(); p.w = w.data(); p.y = y.data(); p.rows = 1; p.dim = 4; p.eps = 1e-6;
  rms_norm(p);
  const double inv = 1.0 / std::sqrt(7.5 + 1e-6);
  const std::vector<float> want = {float(1 * inv), float(2 * inv), float(3 * inv * 2), float(4 * inv * 0.5)};
  EXPECT_TRUE(test::all_close("rms", y, want, test::tol(1e-6, 1e-7)));
}

TEST(RmsNorm, GroupsNormaliseEachGroupAlone) {
  const std::vector<float> x = {3, 4, 0, 2}, w = {1, 1, 1, 1};
  std::vector<float> y(4);
  RmsNormParams p;
  p.x = x.data(); p.w = w.data(); p.y = y.data(); p.rows = 1; p.dim = 4; p.groups = 2; p.eps = 0.0;
  rms_norm(p);
  const double a = 1.0 / std::sqrt(12.5), b = 1.0 / std::sqrt(2.0);
  const std::vector<float> want = {float(3 * a), float(4 * a), 0.0f, float(2 * b)};
  EXPECT_TRUE(test::all_close("group", y, want, test::tol(1e-6, 1e-7)));
  p.groups = 3;
  EXPECT_THROW(rms_norm(p), Error);
}

// The fused ops shared with the kernels (core/op_params.h) against independent fp64 loops.
TEST(FusedOps, AddRmsNormAndGroupNormGate) {
  const int64_t rows = 3, dim = 12, groups = 3, gs = dim / groups;
  std::vector<float> h = randn(size_t(rows * dim), 1), d = randn(size_t(rows * dim), 2), w = randn(size_t(dim), 3);
  std::vector<float> g = randn(size_t(rows * dim), 4, 3.0f), y(size_t(rows * dim));
  std::vector<float> h0 = h, want_h(h.size()), want_y(h.size()), o = h, want_o(h.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) {
      want_h[size_t(r * dim + i)] = h0[size_t(r * dim + i)] + d[size_t(r * dim + i)];
      ss += double(want_h[size_t(r * dim + i)]) * want_h[size_t(r * dim + i)];
    }
    for (int64_t i = 0; i < dim; ++i)
      want_y[size_t(r * dim + i)] = float(want_h[size_t(r * dim + i)] / std::sqrt(ss / dim + 1e-6) * w[size_t(i)]);
    for (int64_t q = 0; q < groups; ++q) {
      double gss = 0;
      for (int64_t i = q * gs; i < (q + 1) * gs; ++i) gss += double(o[size_t(r * dim + i)]) * o[size_t(r * dim + i)];
      for (int64_t i = q * gs; i < (q + 1) * gs; ++i)
        want_o[size_t(r * dim + i)] = float(o[size_t(r * dim + i)] / std::sqrt(gss / gs + 1e-6) * w[size_t(i)] /
                                            (1.0 + std::exp(-double(g[size_t(r * dim + i)]))));
    }
  }
  AddRmsNormParams a;
  a.h = h.data(), a.d = d.data(), a.w = w.data(), a.y = y.data(), a.rows = rows, a.dim = dim, a.eps = 1e-6;
  add_rms_norm(a);
  EXPECT_TRUE(test::all_close("add_rms_norm h", h, want_h, test::tol(1e-6, 1e-6)));
  EXPECT_TRUE(test::all_close("add_rms_norm y", y, want_y, test::tol(1e-5, 1e-6)));
  GroupNormGateParams gn;
  gn.o = o.data(), gn.w = w.data(), gn.gate = g.data(), gn.rows = rows, gn.width = dim, gn.groups = groups;
  gn.eps = 1e-6;
  std::vector<float> o_strided = o;  // the same gate inside wider rows (ld_gate): the same output bit for bit
  group_norm_gate(gn);
  EXPECT_TRUE(test::all_close("group_norm_gate", o, want_o, test::tol(1e-5, 1e-6)));
  const int64_t ldg = dim + 5;
  std::vector<float> wide(size_t(rows * ldg), 1e30f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) wide[size_t(r * ldg + i)] = g[size_t(r * dim + i)];
  gn.o = o_strided.data(), gn.gate = wide.data(), gn.ld_gate = ldg;
  group_norm_gate(gn);
  EXPECT_EQ(o_strided, o);
}

TEST(FusedOps, QkNormRopeNormalisesEachHeadThenRotates) {
  const int64_t rows = 2, nq = 2, nk = 1, hd = 8, rd = 4, half = rd / 2, ld = (nq + nk + 1) * hd;  // + a v head
  for (bool inter : {false, true}) {
    std::vector<float> x = randn(size_t(rows * ld), 5), wq = randn(size_t(hd), 6), wk = randn(size_t(hd), 7);
    const std::vector<int64_t> pos = {3, 70000};
    const std::vector<float> inv = {1.0f, 0.01f};
    std::vector<float> want = x;
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t h = 0; h < nq + nk; ++h) {
        float* v = want.data() + t * ld + h * hd;
        const std::vector<float>& w = h < nq ? wq : wk;
        double ss = 0;
        for (int64_t i = 0; i < hd; ++i) ss += double(v[i]) * v[i];
        for (int64_t i = 0; i < hd; ++i) v[i] = float(v[i] / std::sqrt(ss / hd + 1e-6) * w[size_t(i)]);
        float out[rd];
        for (int64_t j = 0; j < half; ++j) {
          const double ang = double(float(pos[size_t(t)]) * inv[size_t(j)]);
          const double x1 = inter ? v[2 * j] : v[j], x2 = inter ? v[2 * j + 1] : v[j + half];
          out[j] = float(x1 * std::cos(ang) - x2 * std::sin(ang));
          out[j + half] = float(x2 * std::cos(ang) + x1 * std::sin(ang));
        }
        for (int64_t i = 0; i < rd; ++i) v[i] = out[i];
      }
    QkNormRopeParams p;
    p.x = x.data(), p.pos = pos.data(), p.inv_freq = inv.data(), p.wq = wq.data(), p.wk = wk.data();
    p.rows = rows, p.nq = nq, p.nk = nk, p.hd = hd, p.ld = ld, p.rope_dim = rd, p.eps = 1e-6, p.interleaved = inter;
    qk_norm_rope(p);
    EXPECT_TRUE(test::all_close(inter ? "qk_norm_rope interleaved" : "qk_norm_rope neox", x, want,
                                test::tol(1e-5, 1e-5)));
  }
}

TEST(FusedOps, EmbedCopiesRows) {
  const std::vector<float> table = randn(5 * 3, 8);
  const std::vector<int32_t> ids = {4, 0, 4};
  std::vector<float> out(9);
  EmbedParams p;
  p.ids = ids.data(), p.table = table.data(), p.out = out.data(), p.n = 3, p.H = 3;
  embed(p);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(out[size_t(i * 3 + j)], table[size_t(ids[size_t(i)] * 3 + j)]);
}

TEST(Rope, DefaultFrequencies) {
  RopeFreqParams fp;
  fp.rope_dim = 4;
  fp.theta = 10000.0;
  const RopeFreqs f = rope_freqs(fp);
  ASSERT_EQ(f.inv_freq.size(), 2u);
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(f.inv_freq[1], 0.01f);
  EXPECT_EQ(f.attention_factor, 1.0f);
  EXPECT_EQ(f.mla_mscale2, 1.0);
}

TEST(Rope, NeoxPartialHandComputed) {
  // hd 6, rotary 4: pairs (0,2), (1,3); dims 4,5 pass through. pos 2, inv_freq {1, 0.5}.
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const std::vector<float> inv = {1.0f, 0.5f};
  const int64_t pos = 2;
  RopeParams p;
  p.x = x.data(); p.pos = &pos; p.inv_freq = inv.data(); p.rows = 1; p.heads = 1; p.row_stride = 6;
  p.head_stride = 6; p.rope_dim = 4;
  rope(p);
  const double c0 = std::cos(2.0), s0 = std::sin(2.0), c1 = std::cos(1.0), s1 = std::sin(1.0);
  const std::vector<float> want = {float(1 * c0 - 3 * s0), float(2 * c1 - 4 * s1), float(3 * c0 + 1 * s0),
                                   float(4 * c1 + 2 * s1), 5, 6};
  EXPECT_TRUE(test::all_close("neox", x, want, test::tol(1e-6, 1e-6)));
}

TEST(Rope, InterleavedHandComputedAndScoresInvariant) {
  // pairs (0,1), (2,3), written de-interleaved: out = [r0a, r1a, r0b, r1b].
  std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> inv = {1.0f, 0.5f};
  const int64_t pos = 2;
  RopeParams p;
  p.x = x.data(); p.pos = &pos; p.inv_freq = inv.data(); p.rows = 1; p.heads = 1; p.row_stride = 4;
  p.head_stride = 4; p.rope_dim = 4; p.interleaved = true;
  rope(p);
  const double c0 = std::cos(2.0), s0 = std::sin(2.0), c1 = std::cos(1.0), s1 = std::sin(1.0);
  const std::vector<float> want = {float(1 * c0 - 2 * s0), float(3 * c1 - 4 * s1), float(2 * c0 + 1 * s0),
                                   float(4 * c1 + 3 * s1)};
  EXPECT_TRUE(test::all_close("interleaved", x, want, test::tol(1e-6, 1e-6)));
}

TEST(Rope, YarnDeepseekShape) {
  RopeFreqParams fp;
  fp.rope_dim = 64; fp.theta = 10000.0; fp.yarn = true; fp.factor = 40.0;
  fp.original_max_position_embeddings = 4096; fp.mscale = 1.0; fp.mscale_all_dim = 1.0;
  const RopeFreqs f = rope_freqs(fp);
  EXPECT_NEAR(f.attention_factor, 1.0f, 1e-7);  // mscale == mscale_all_dim
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(f.mla_mscale2, m * m, 1e-12);
  // Correction range [10, 23]: below it pure extrapolation, above it pure interpolation.
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(10000.0, -2.0 * i / 64.0);
    if (i <= 10) {
      EXPECT_NEAR(f.inv_freq[i], base, base * 1e-6) << i;
    } else if (i >= 23) {
      EXPECT_NEAR(f.inv_freq[i], base / 40.0, base / 40.0 * 1e-6) << i;
    } else {
      EXPECT_TRUE(f.inv_freq[i] < base && f.inv_freq[i] > base / 40.0) << i;
    }
  }
  fp.mscale = 0.0; fp.mscale_all_dim = 0.0;
  EXPECT_NEAR(rope_freqs(fp).attention_factor, 0.1 * std::log(40.0) + 1.0, 1e-6);
}

// Independent fp64 causal attention.
std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                   const std::vector<int64_t>& qpos, int64_t T, int64_t S, int64_t nh, int64_t nkv,
                                   int64_t dk, int64_t dv, double scale) {
  std::vector<float> o(T * nh * dv);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / (nh / nkv);
      std::vector<double> s;
      double mx = -1e300;
      for (int64_t j = 0; j <= qpos[t] && j < S; ++j) {
        double d = 0;
        for (int64_t i = 0; i < dk; ++i) d += double(q[(t * nh + h) * dk + i]) * k[(j * nkv + g) * dk + i];
        s.push_back(d * scale);
        mx = std::max(mx, s.back());
      }
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int64_t i = 0; i < dv; ++i) {
        double a = 0;
        for (size_t j = 0; j < s.size(); ++j) a += s[j] / z * v[(j * nkv + g) * dv + i];
        o[(t * nh + h) * dv + i] = float(a);
      }
    }
  return o;
}

TEST(Attention, GqaMatchesNaiveWithCachePrefix) {
  const int64_t T = 5, S = 12, nh = 6, nkv = 2, dk = 8, dv = 4;
  const auto q = randn(T * nh * dk, 1), k = randn(S * nkv * dk, 2), v = randn(S * nkv * dv, 3);
  std::vector<int64_t> qpos;
  for (int64_t t = 0; t < T; ++t) qpos.push_back(S - T + t);
  std::vector<float> o(T * nh * dv);
  AttentionParams p;
  p.q = q.data(); p.k = k.data(); p.v = v.data(); p.o = o.data(); p.qpos = qpos.data();
  p.T = T; p.S = S; p.nh = nh; p.nkv = nkv; p.dk = dk; p.dv = dv; p.scale = 0.3f;
  attention(p);
  EXPECT_TRUE(test::all_close("gqa", o, naive_attention(q, k, v, qpos, T, S, nh, nkv, dk, dv, 0.3), test::tol(1e-5, 1e-6)));
}

TEST(Attention, GemmPathMatchesReference) {
  // 300 queries (two tiles, one partial) at positions 100..399 over 400 keys; dk != dv; GQA 6:2.
  const int64_t T = 300, S = 400, nh = 6, nkv = 2, dk = 24, dv = 16;
  const auto q = randn(T * nh * dk, 11), k = randn(S * nkv * dk, 12), v = randn(S * nkv * dv, 13);
  std::vector<int64_t> qpos;
  for (int64_t t = 0; t < T; ++t) qpos.push_back(S - T + t);
  std::vector<float> o1(T * nh * dv), o2(T * nh * dv);
  AttentionParams p;
  p.q = q.data(); p.k = k.data(); p.v = v.data(); p.qpos = qpos.data();
  p.T = T; p.S = S; p.nh = nh; p.nkv = nkv; p.dk = dk; p.dv = dv; p.scale = 0.2f;
  p.o = o1.data();
  attention(p);
  p.o = o2.data();
  attention_gemm(p);
  EXPECT_TRUE(test::all_close("gemm attention", o2, o1, test::tol(1e-5, 1e-6, 1e-12)));
}

TEST(Lightning, ChunkedEqualsRecurrentOver4096Tokens) {
  const int64_t T = 4096, nh = 3, d = 16;
  const auto q = randn(T * nh * d, 4), k = randn(T * nh * d, 5, 0.25f), v = randn(T * nh * d, 6);
  const std::vector<float> g = {-0.7071f, -0.05f, -0.0039f};
  const auto s0 = randn(nh * d * d, 7);
  std::vector<float> o1(T * nh * d), o2(T * nh * d), st1 = s0, st2 = s0;
  LightningParams p;
  p.q = q.data(); p.k = k.data(); p.v = v.data(); p.g = g.data(); p.T = T; p.nh = nh; p.d = d; p.scale = 0.25f;
  p.o = o1.data(); p.state = st1.data();
  lightning_recurrent(p);
  for (int64_t chunk : {64, 37}) {
    st2 = s0;
    p.o = o2.data(); p.state = st2.data(); p.chunk = chunk;
    lightning_chunked(p);
    EXPECT_TRUE(test::all_close("out", o2, o1, test::tol(1e-4, 1e-4, 1e-9))) << "chunk " << chunk;
    EXPECT_TRUE(test::all_close("state", st2, st1, test::tol(1e-4, 1e-4, 1e-9))) << "chunk " << chunk;
  }
  // fp64 loop on the first 100 tokens of head 1 (hand recurrence S = e^g S + kᵀv, o = scale·q S).
  std::vector<double> S(s0.begin() + d * d, s0.begin() + 2 * d * d);
  const double e = std::exp(double(g[1]));
  for (int64_t t = 0; t < 100; ++t) {
    const int64_t b = (t * nh + 1) * d;
    for (int64_t a = 0; a < d; ++a)
      for (int64_t c = 0; c < d; ++c) S[a * d + c] = e * S[a * d + c] + double(k[b + a]) * v[b + c];
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t a = 0; a < d; ++a) acc += 0.25 * q[b + a] * S[a * d + c];
      EXPECT_NEAR(o1[b + c], acc, 1e-4 * (1 + std::fabs(acc))) << t << "," << c;
    }
  }
}

TEST(Lightning, LogDecay) {
  const auto g = lightning_log_decay({0.5, 0.25}, 2.0);
  EXPECT_FLOAT_EQ(g[0], -1.0f);
  EXPECT_FLOAT_EQ(g[1], -0.5f);
}

TEST(Mla, AbsorbedEqualsNonAbsorbed) {
  const int64_t T = 3, S = 20, nh = 4, dn = 8, dr = 6, dv = 5, r = 12, dqk = dn + dr;
  const auto q = randn(T * nh * dqk, 8), cache = randn(S * (r + dr), 9), kvb = randn(nh * (dn + dv) * r, 10, 0.3f);
  const std::vector<int64_t> qpos = {S - 3, S - 2, S - 1};
  std::vector<float> o1(T * nh * dv);
  MlaDecodeParams d;
  d.q = q.data(); d.cache = cache.data(); d.kv_b = kvb.data(); d.o = o1.data(); d.qpos = qpos.data();
  d.T = T; d.S = S; d.nh = nh; d.dn = dn; d.dr = dr; d.dv = dv; d.r = r; d.scale = 0.2f;
  mla_decode_absorbed(d);
  // Expanded form: K_h = [W_UK_h c ‖ k_pe], V_h = W_UV_h c.
  std::vector<float> K(S * nh * dqk), V(S * nh * dv);
  for (int64_t j = 0; j < S; ++j)
    for (int64_t h = 0; h < nh; ++h) {
      for (int64_t i = 0; i < dn + dv; ++i) {
        double a = 0;
        for (int64_t c = 0; c < r; ++c) a += double(kvb[(h * (dn + dv) + i) * r + c]) * cache[j * (r + dr) + c];
        if (i < dn) K[(j * nh + h) * dqk + i] = float(a);
        else V[(j * nh + h) * dv + i - dn] = float(a);
      }
      for (int64_t i = 0; i < dr; ++i) K[(j * nh + h) * dqk + dn + i] = cache[j * (r + dr) + r + i];
    }
  const auto o2 = naive_attention(q, K, V, qpos, T, S, nh, nh, dqk, dv, 0.2);
  EXPECT_TRUE(test::all_close("mla", o1, o2, test::tol(1e-5, 1e-5, 1e-10)));
}

TEST(Router, TiesBreakByLowerIndexAndGroupsMask) {
  // 8 experts, 4 groups of 2, keep 2 groups, top-3. Group sums: g0 = 0.2+0.2, g1 = 0.9+0.0, g2 = 0.5+0.5,
  // g3 = 0.45+0.45 → keep g2 (1.0) and g1 (0.9). Expert 2 (0.9) is best; 4 and 5 tie (0.5): lower index first.
  const std::vector<float> sel = {0.2f, 0.2f, 0.9f, 0.0f, 0.5f, 0.5f, 0.45f, 0.45f};
  std::vector<float> logits(8), bias(8, 0.0f);
  for (int i = 0; i < 8; ++i) logits[i] = std::log(sel[i] / (1 - sel[i] + 1e-30f));
  logits[3] = -30.0f;
  std::vector<int32_t> ids(3);
  std::vector<float> w(3);
  MoeRouteParams p;
  p.logits = logits.data(); p.bias = bias.data(); p.topk_ids = ids.data(); p.topk_weights = w.data();
  p.rows = 1; p.E = 8; p.k = 3; p.n_group = 4; p.topk_group = 2; p.routed_scaling_factor = 2.5;
  moe_route(p);
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 4, 5}));
  const double sum = 0.9 + 0.5 + 0.5;
  EXPECT_NEAR(w[0], 0.9 / sum * 2.5, 1e-5);
  EXPECT_NEAR(w[1], 0.5 / sum * 2.5, 1e-5);
  // The bias changes the selection only: favour expert 7 (group 3) strongly.
  bias[7] = 1.0f;
  moe_route(p);
  // Groups now: g3 = 1.45 + 0.45, g2 = 1.0 → g1 (expert 2) is masked out.
  EXPECT_EQ(ids, (std::vector<int32_t>{7, 4, 5}));
  float total = w[0] + w[1] + w[2];
  EXPECT_NEAR(total, 2.5, 1e-5);
  EXPECT_NEAR(w[0], 0.45 / (0.45 + 0.5 + 0.5) * 2.5, 1e-5);  // the unbiased score of expert 7
  // Exact ties everywhere: ids ascending.
  std::fill(logits.begin(), logits.end(), 0.0f);
  std::fill(bias.begin(), bias.end(), 0.0f);
  moe_route(p);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));
}

TEST(Sampling, GreedyTopKTopPAndSeeds) {
  const std::vector<float> lg = {0.1f, 3.0f, 2.9f, -1.0f, 3.0f};
  uint64_t s = 1;
  SamplingParams p;
  p.logits = lg.data(); p.vocab = 5;
  EXPECT_EQ(sample(p, &s), 1);  // greedy, tie → lower index
  p.temperature = 1.0f; p.top_k = 1;
  EXPECT_EQ(sample(p, &s), 1);
  p.top_k = 0; p.top_p = 1e-6f;
  EXPECT_EQ(sample(p, &s), 1);
  p.top_p = 1.0f; p.top_k = 3;
  std::vector<int64_t> a, b;
  uint64_t s1 = 42, s2 = 42;
  for (int i = 0; i < 50; ++i) { a.push_back(sample(p, &s1)); b.push_back(sample(p, &s2)); }
  EXPECT_EQ(a, b);
  for (int64_t x : a) EXPECT_TRUE(x == 1 || x == 2 || x == 4) << x;
}

}  // namespace
}  // namespace ling::ref
