// MoE decode kernels (kernels/moe, moe.h) vs lib/ref:
// - route: ids identical to ref::moe_route and weights within 1e-6 relative, on random logits and on logits
//   quantised to a few values (exact ties in scores, group scores and picks), at Ling-2.5-1T settings (E 256,
//   k 8, 8 groups, 4 kept) and Ling-2.0-like ones (E 64 / 256, 1 or 8 groups, k 6 / 8), n = 1, 7, 300;
// - experts: gate_up + SwiGLU against ref::linear on the bf16-rounded weights + ref::swiglu, down + combine
//   against ref::linear per slot summed in double, with null (not held) experts, repeated experts, H / I tails,
//   bf16 and fp32 weight tables, per slot and grouped by expert through the device plan (groups of 1 to 20
//   tokens); route with the shared expert as slot k; the fused router (GEMV + route in one launch) equal to the pair,
//   and with the add + norm as its head equal to the norm then the router; the norm's deferred delta;
// - the fused one-token MoE kernel (router + experts in one launch) against the router and ref.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "kernel_test_util.h"
#include "ling/kernels/gemv.h"
#include "ling/kernels/launch.h"
#include "ling/kernels/moe.h"
#include "ling/kernels/norm.h"
#include "ling/kernels/sampling.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

struct RouteCase {
  int64_t E, k, n_group, topk_group;
  bool bias;
};

// shared: rows of k + 1 slots, the last one the shared expert (id E, weight 1).
void run_route(const RouteCase& c, int64_t n, bool ties, uint64_t seed, bool shared = false) {
  std::vector<float> logits = uniform(size_t(n * c.E), -4, 4, seed), bias = uniform(size_t(c.E), -0.5f, 0.5f, seed + 1);
  if (ties) {  // three logit values and two bias values: exact ties everywhere
    for (auto& v : logits) v = std::round(v / 4.0f);
    for (auto& v : bias) v = v < 0 ? 0.0f : 0.25f;
  }
  const int64_t ld = c.k + (shared ? 1 : 0);
  DeviceBuffer dl(logits.size() * 4), db(bias.size() * 4), di(size_t(n * ld) * 4), dw(size_t(n * ld) * 4);
  dl.upload(logits), db.upload(bias);
  kernels::MoeRouteDevParams p;
  p.logits = dl.as<float>(), p.bias = c.bias ? db.as<float>() : nullptr;
  p.topk_ids = di.as<int32_t>(), p.topk_weights = dw.as<float>();
  p.n = n, p.E = c.E, p.k = c.k, p.n_group = c.n_group, p.topk_group = c.topk_group, p.routed_scaling_factor = 2.5f;
  p.shared_slot = shared;
  kernels::launch_moe_route(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const auto got_ids = di.download<int32_t>(size_t(n * ld));
  const auto got_wts = dw.download<float>(size_t(n * ld));
  std::vector<int32_t> ids;
  std::vector<float> wts;
  for (int64_t t = 0; t < n; ++t) {  // the routed slots; the shared slot checked here
    ids.insert(ids.end(), got_ids.begin() + t * ld, got_ids.begin() + t * ld + c.k);
    wts.insert(wts.end(), got_wts.begin() + t * ld, got_wts.begin() + t * ld + c.k);
    if (shared) {
      ASSERT_EQ(got_ids[size_t(t * ld + c.k)], c.E) << "shared slot of token " << t;
      ASSERT_EQ(got_wts[size_t(t * ld + c.k)], 1.0f) << "shared slot of token " << t;
    }
  }

  std::vector<int32_t> rid(ids.size());
  std::vector<float> rw(wts.size());
  ref::MoeRouteParams r;
  r.logits = logits.data(), r.bias = c.bias ? bias.data() : nullptr, r.topk_ids = rid.data(), r.topk_weights = rw.data();
  r.rows = n, r.E = c.E, r.k = c.k, r.n_group = c.n_group, r.topk_group = c.topk_group, r.routed_scaling_factor = 2.5;
  ref::moe_route(r);
  const std::string tag = "E=" + std::to_string(c.E) + " k=" + std::to_string(c.k) + " groups=" +
                          std::to_string(c.n_group) + "/" + std::to_string(c.topk_group) + " n=" + std::to_string(n) +
                          (ties ? " ties" : "") + (c.bias ? " bias" : "") + (shared ? " shared slot" : "");
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_EQ(ids[i], rid[i]) << tag << " slot " << i;
    ASSERT_LE(std::fabs(wts[i] - rw[i]), 1e-6f * std::fabs(rw[i])) << tag << " slot " << i;
  }
  std::printf("  route %s: %zu ids equal, weights within 1e-6\n", tag.c_str(), ids.size());
}

TEST(MoeRouteKernel, MatchesRefRandomAndTies) {
  SKIP_WITHOUT_CUDA();
  const RouteCase cases[] = {{256, 8, 8, 4, true},  {256, 8, 8, 4, false}, {64, 6, 1, 1, true},
                             {256, 8, 1, 1, true},  {64, 6, 8, 3, true},   {512, 8, 16, 8, true},
                             {256, 32, 8, 4, true}, {8, 1, 1, 1, true}};
  uint64_t seed = 100;
  for (const auto& c : cases)
    for (int64_t n : {1, 7, 300})
      for (bool ties : {false, true}) run_route(c, n, ties, seed += 3);
  run_route({256, 8, 8, 4, true}, 7, false, 900, true);  // the shared expert as slot k
  run_route({64, 6, 1, 1, true}, 300, true, 901, true);
}

TEST(MoeRouteKernel, RefusesBadSettings) {
  kernels::MoeRouteDevParams p;
  p.n = 1, p.E = 1024, p.k = 8, p.n_group = 8, p.topk_group = 4;
  EXPECT_THROW(kernels::launch_moe_route(p, nullptr), Error);
  p.E = 256, p.n_group = 7;
  EXPECT_THROW(kernels::launch_moe_route(p, nullptr), Error);
  p.n_group = 8, p.k = 40;
  EXPECT_THROW(kernels::launch_moe_route(p, nullptr), Error);
}

// The fused router (launch_moe_router: the GEMV and the routing in one launch, the last CTA routing) against
// launch_gemv + launch_moe_route on the same inputs: logits, ids and weights equal bit for bit, for n = 1..16
// tokens, E 256 (Ring-mini / Ling-2.5 settings) and 512, H 2048 and a tail (H 72 with ldx 76), with and without
// the shared slot, with exact ties; the same counter across all launches (each must leave it zero for the next).
TEST(MoeRouterKernel, OneLaunchEqualsGemvThenRoute) {
  SKIP_WITHOUT_CUDA();
  // ties: the router rows repeat three rows and the biases take two values, so logits, selection scores, group
  // scores and picks tie exactly (the one-token routing must keep route_row's order: lower index first).
  struct Case { int64_t E, k, n_group, topk_group, H, ldx; bool shared, ties; };
  const Case cases[] = {{256, 8, 8, 4, 2048, 0, true, false}, {256, 8, 8, 4, 72, 76, false, false},
                        {512, 8, 16, 8, 2048, 0, false, false}, {64, 6, 1, 1, 1024, 0, false, false},
                        {256, 8, 8, 4, 2048, 0, true, true},    {96, 8, 4, 2, 64, 0, false, true}};
  DeviceBuffer counter(4);
  TEST_CUDA(cudaMemset(counter.as<void>(), 0, 4));
  uint64_t seed = 700;
  int launches = 0;
  for (const Case& c : cases)
    for (int64_t n : {1, 2, 5, 9, 16}) {
      const int64_t ldx = c.ldx ? c.ldx : c.H, ld = c.k + (c.shared ? 1 : 0);
      std::vector<float> x = uniform(size_t(n * ldx), -1, 1, seed += 5);
      std::vector<float> w = uniform(size_t(c.E * c.H), -0.05f, 0.05f, seed + 1);
      std::vector<float> bias = uniform(size_t(c.E), -0.5f, 0.5f, seed + 2);
      if (c.ties) {
        for (int64_t e = 3; e < c.E; ++e) std::copy_n(w.begin() + (e % 3) * c.H, c.H, w.begin() + e * c.H);
        for (int64_t e = 0; e < c.E; ++e) bias[e] = (e * 7 / 5) % 2 ? 0.25f : -0.25f;
      }
      DeviceBuffer dx(x.size() * 4), dw(w.size() * 4), db(bias.size() * 4);
      DeviceBuffer l1(size_t(n * c.E) * 4), l2(size_t(n * c.E) * 4), i1(size_t(n * ld) * 4), i2(size_t(n * ld) * 4);
      DeviceBuffer w1(size_t(n * ld) * 4), w2(size_t(n * ld) * 4);
      dx.upload(x), dw.upload(w), db.upload(bias);
      kernels::GemvParams g;
      g.x = dx.as<float>(), g.ldx = ldx, g.w_f32 = dw.as<float>(), g.y = l1.as<float>(), g.M = n, g.N = c.E, g.K = c.H;
      kernels::launch_gemv(g, nullptr);
      kernels::MoeRouteDevParams rp;
      rp.bias = db.as<float>(), rp.n = n, rp.E = c.E, rp.k = c.k, rp.n_group = c.n_group, rp.topk_group = c.topk_group;
      rp.routed_scaling_factor = 2.5f, rp.shared_slot = c.shared;
      rp.logits = l1.as<float>(), rp.topk_ids = i1.as<int32_t>(), rp.topk_weights = w1.as<float>();
      kernels::launch_moe_route(rp, nullptr);
      kernels::MoeRouterParams r;
      r.route = rp;
      r.route.logits = l2.as<float>(), r.route.topk_ids = i2.as<int32_t>(), r.route.topk_weights = w2.as<float>();
      r.x = dx.as<float>(), r.ldx = ldx, r.H = c.H, r.w = dw.as<float>(), r.logits = l2.as<float>();
      r.counter = counter.as<unsigned>();
      for (int rep = 0; rep < 2; ++rep, ++launches) kernels::launch_moe_router(r, nullptr);
      TEST_CUDA(cudaDeviceSynchronize());
      const std::string tag = "E=" + std::to_string(c.E) + " H=" + std::to_string(c.H) + " n=" + std::to_string(n) +
                              (c.ties ? " ties" : "");
      EXPECT_EQ(l1.download<float>(size_t(n * c.E)), l2.download<float>(size_t(n * c.E))) << tag << " logits";
      EXPECT_EQ(i1.download<int32_t>(size_t(n * ld)), i2.download<int32_t>(size_t(n * ld))) << tag << " ids";
      EXPECT_EQ(w1.download<float>(size_t(n * ld)), w2.download<float>(size_t(n * ld))) << tag << " weights";
    }
  EXPECT_EQ(counter.download<unsigned>(1)[0], 0u) << "after " << launches << " launches";
  kernels::MoeRouterParams bad;
  bad.route.n = 17, bad.route.E = 256, bad.route.k = 8, bad.route.n_group = 8, bad.route.topk_group = 4;
  EXPECT_THROW(kernels::launch_moe_router(bad, nullptr), Error);
}

// The router reading bf16 weights (MoeRouterParams::w16) equals the router reading the same values as fp32, bit for
// bit (logits, ids, weights): the widening is exact and the sums are the same. 1, 3 and 9 tokens (both token
// tiles), 256 and 512 experts, H 2,048 and 8,200 (a stride past the first 2,048 values).
TEST(MoeRouterKernel, Bf16WeightsEqualFp32) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t E, k, n_group, topk_group, H; };
  const Case cases[] = {{256, 8, 8, 4, 2048}, {512, 8, 16, 8, 8200}};
  DeviceBuffer counter(4);
  TEST_CUDA(cudaMemset(counter.as<void>(), 0, 4));
  uint64_t seed = 2100;
  for (const Case& c : cases)
    for (int64_t n : {1, 3, 9}) {
      std::vector<float> w = uniform(size_t(c.E * c.H), -0.05f, 0.05f, seed += 3);
      const std::vector<uint16_t> w16 = to_bf16(w);  // w now holds the bf16 values
      const std::vector<float> x = uniform(size_t(n * c.H), -1, 1, seed + 1), bias = uniform(size_t(c.E), -0.5f, 0.5f, seed + 2);
      DeviceBuffer dw(w.size() * 4), dw16(w16.size() * 2), dx(x.size() * 4), db(bias.size() * 4);
      dw.upload(w), dw16.upload(w16), dx.upload(x), db.upload(bias);
      const int64_t ld = c.k;
      DeviceBuffer l1(size_t(n * c.E) * 4), l2(size_t(n * c.E) * 4), i1(size_t(n * ld) * 4), i2(size_t(n * ld) * 4),
          w1(size_t(n * ld) * 4), w2(size_t(n * ld) * 4);
      kernels::MoeRouterParams r;
      r.route.bias = db.as<float>(), r.route.n = n, r.route.E = c.E, r.route.k = c.k, r.route.n_group = c.n_group;
      r.route.topk_group = c.topk_group, r.route.routed_scaling_factor = 2.5f;
      r.x = dx.as<float>(), r.H = c.H, r.counter = counter.as<unsigned>();
      auto run = [&](bool bf16, DeviceBuffer& l, DeviceBuffer& ids, DeviceBuffer& wts) {
        r.w = bf16 ? nullptr : dw.as<float>(), r.w16 = bf16 ? dw16.as<uint16_t>() : nullptr;
        r.logits = l.as<float>(), r.route.logits = l.as<float>();
        r.route.topk_ids = ids.as<int32_t>(), r.route.topk_weights = wts.as<float>();
        kernels::launch_moe_router(r, nullptr);
      };
      run(false, l1, i1, w1);
      run(true, l2, i2, w2);
      TEST_CUDA(cudaDeviceSynchronize());
      const std::string tag = "bf16 router E=" + std::to_string(c.E) + " H=" + std::to_string(c.H) + " n=" +
                              std::to_string(n);
      EXPECT_EQ(l2.download<float>(size_t(n * c.E)), l1.download<float>(size_t(n * c.E))) << tag << " logits";
      EXPECT_EQ(i2.download<int32_t>(size_t(n * ld)), i1.download<int32_t>(size_t(n * ld))) << tag << " ids";
      EXPECT_EQ(w2.download<float>(size_t(n * ld)), w1.download<float>(size_t(n * ld))) << tag << " weights";
    }
  EXPECT_EQ(counter.download<unsigned>(1)[0], 0u);
  kernels::MoeRouterParams bad;  // both weight pointers
  alignas(16) static float buf[64];
  bad.route.n = 1, bad.route.E = 256, bad.route.k = 8, bad.route.n_group = 8, bad.route.topk_group = 4;
  bad.x = buf, bad.w = buf, bad.w16 = reinterpret_cast<const uint16_t*>(buf), bad.logits = buf, bad.route.logits = buf;
  bad.counter = reinterpret_cast<unsigned*>(buf), bad.route.topk_ids = reinterpret_cast<int32_t*>(buf);
  bad.route.topk_weights = buf, bad.H = 16;
  EXPECT_THROW(kernels::launch_moe_router(bad, nullptr), Error);
}

// The router with the add + norm head (MoeRouterParams::head) equals launch_add_rms_norm then the router, bit for
// bit: the normed row it writes (and h + d, which the plain norm writes to h, against h left as it was plus the
// saved d), logits, ids and weights. H 2,048 (every thread two float4), 1,032 and 264 (idle threads and warps),
// fp32 and bf16 router weights, 256 experts with the shared slot and 64 in one group; the refusals.
TEST(MoeRouterKernel, AddNormHeadEqualsNormThenRouter) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t E, k, n_group, topk_group, H; bool shared, bf16; };
  const Case cases[] = {{256, 8, 8, 4, 2048, true, true}, {256, 8, 8, 4, 2048, false, false},
                        {256, 8, 8, 4, 1032, true, false}, {64, 6, 1, 1, 264, false, true}};
  DeviceBuffer counter(4);
  TEST_CUDA(cudaMemset(counter.as<void>(), 0, 4));
  uint64_t seed = 3100;
  for (const Case& c : cases) {
    const int64_t H = c.H, ld = c.k + (c.shared ? 1 : 0);
    std::vector<float> h = uniform(size_t(H), -3, 3, seed += 7), d = uniform(size_t(H), -1, 1, seed + 1);
    std::vector<float> nw = uniform(size_t(H), 0.5f, 1.5f, seed + 2), bias = uniform(size_t(c.E), -0.5f, 0.5f, seed + 3);
    std::vector<float> w = uniform(size_t(c.E * H), -0.05f, 0.05f, seed + 4);
    const std::vector<uint16_t> w16 = to_bf16(w);
    DeviceBuffer dh1(size_t(H) * 4), dh2(size_t(H) * 4), dd(size_t(H) * 4), dnw(size_t(H) * 4), db(bias.size() * 4);
    DeviceBuffer dw(w.size() * 4), dw16(w16.size() * 2), x1(size_t(H) * 4), x2(size_t(H) * 4), dsave(size_t(H) * 4);
    DeviceBuffer l1(size_t(c.E) * 4), l2(size_t(c.E) * 4), i1(size_t(ld) * 4), i2(size_t(ld) * 4), w1(size_t(ld) * 4),
        w2(size_t(ld) * 4);
    dh1.upload(h), dh2.upload(h), dd.upload(d), dnw.upload(nw), db.upload(bias), dw.upload(w), dw16.upload(w16);
    AddRmsNormParams np;
    np.h = dh1.as<float>(), np.d = dd.as<float>(), np.w = dnw.as<float>(), np.y = x1.as<float>(), np.rows = 1;
    np.dim = H, np.eps = 1e-6;
    kernels::launch_add_rms_norm(np, nullptr);
    kernels::MoeRouterParams r;
    r.route.bias = db.as<float>(), r.route.n = 1, r.route.E = c.E, r.route.k = c.k, r.route.n_group = c.n_group;
    r.route.topk_group = c.topk_group, r.route.routed_scaling_factor = 2.5f, r.route.shared_slot = c.shared;
    r.H = H, r.counter = counter.as<unsigned>();
    if (c.bf16) r.w16 = dw16.as<uint16_t>();
    else r.w = dw.as<float>();
    r.x = x1.as<float>(), r.logits = l1.as<float>(), r.route.logits = l1.as<float>();
    r.route.topk_ids = i1.as<int32_t>(), r.route.topk_weights = w1.as<float>();
    kernels::launch_moe_router(r, nullptr);
    r.x = nullptr, r.logits = l2.as<float>(), r.route.logits = l2.as<float>();
    r.route.topk_ids = i2.as<int32_t>(), r.route.topk_weights = w2.as<float>();
    r.head.h = dh2.as<float>(), r.head.d = dd.as<float>(), r.head.w = dnw.as<float>(), r.head.x_out = x2.as<float>();
    r.head.d_save = dsave.as<float>(), r.head.eps = 1e-6;
    kernels::launch_moe_router(r, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::string tag = "head E=" + std::to_string(c.E) + " H=" + std::to_string(H) + (c.bf16 ? " bf16" : " fp32");
    EXPECT_EQ(x2.download<float>(size_t(H)), x1.download<float>(size_t(H))) << tag << " normed row";
    EXPECT_EQ(dh2.download<float>(size_t(H)), h) << tag << " h must stay as it was";
    EXPECT_EQ(dsave.download<float>(size_t(H)), d) << tag << " saved d";
    std::vector<float> hd = h;
    for (int64_t i = 0; i < H; ++i) hd[size_t(i)] = h[size_t(i)] + d[size_t(i)];
    EXPECT_EQ(dh1.download<float>(size_t(H)), hd) << tag << " h + d of the plain norm";
    EXPECT_EQ(l2.download<float>(size_t(c.E)), l1.download<float>(size_t(c.E))) << tag << " logits";
    EXPECT_EQ(i2.download<int32_t>(size_t(ld)), i1.download<int32_t>(size_t(ld))) << tag << " ids";
    EXPECT_EQ(w2.download<float>(size_t(ld)), w1.download<float>(size_t(ld))) << tag << " weights";
  }
  EXPECT_EQ(counter.download<unsigned>(1)[0], 0u);
  kernels::MoeRouterParams bad;  // a head missing its d_save; then a head for 2 tokens
  alignas(16) static float buf[64];
  bad.route.n = 1, bad.route.E = 256, bad.route.k = 8, bad.route.n_group = 8, bad.route.topk_group = 4;
  bad.w = buf, bad.logits = buf, bad.route.logits = buf, bad.counter = reinterpret_cast<unsigned*>(buf);
  bad.route.topk_ids = reinterpret_cast<int32_t*>(buf), bad.route.topk_weights = buf, bad.H = 16;
  bad.head.h = buf, bad.head.d = buf, bad.head.w = buf, bad.head.x_out = buf;
  EXPECT_THROW(kernels::launch_moe_router(bad, nullptr), Error);
  bad.head.d_save = buf, bad.route.n = 2;
  EXPECT_THROW(kernels::launch_moe_router(bad, nullptr), Error);
}

// The add + norm with a deferred delta (launch_add_rms_norm's d_first) equals two adds in order: h + d0 by one norm,
// then + d by the next, bit for bit in h and y; the register path (2,048, 8,192) and the strided one (8,190).
TEST(MoeRouterKernel, NormWithDeferredDeltaEqualsTwoAdds) {
  SKIP_WITHOUT_CUDA();
  for (const int64_t H : {2048, 8192, 8190}) {
    std::vector<float> h = uniform(size_t(H), -3, 3, uint64_t(H)), d0 = uniform(size_t(H), -1, 1, uint64_t(H + 1));
    std::vector<float> d = uniform(size_t(H), -1, 1, uint64_t(H + 2)), w = uniform(size_t(H), 0.5f, 1.5f, uint64_t(H + 3));
    DeviceBuffer h1(size_t(H) * 4), h2(size_t(H) * 4), dd0(size_t(H) * 4), dd(size_t(H) * 4), dw(size_t(H) * 4),
        y1(size_t(H) * 4), y2(size_t(H) * 4);
    h1.upload(h), h2.upload(h), dd0.upload(d0), dd.upload(d), dw.upload(w);
    AddRmsNormParams p;
    p.rows = 1, p.dim = H, p.eps = 1e-6, p.w = dw.as<float>();
    p.h = h1.as<float>(), p.d = dd0.as<float>(), p.y = y1.as<float>();
    kernels::launch_add_rms_norm(p, nullptr);
    p.d = dd.as<float>();
    kernels::launch_add_rms_norm(p, nullptr);
    p.h = h2.as<float>(), p.y = y2.as<float>();
    kernels::launch_add_rms_norm(p, nullptr, false, dd0.as<float>());
    TEST_CUDA(cudaDeviceSynchronize());
    EXPECT_EQ(h2.download<float>(size_t(H)), h1.download<float>(size_t(H))) << "H=" << H << " h";
    EXPECT_EQ(y2.download<float>(size_t(H)), y1.download<float>(size_t(H))) << "H=" << H << " y";
  }
}

// E experts of bf16 weights in one device buffer each for gate_up [2I, H] and down [H, I]; experts with
// e % 5 == 3 are not held (null table entries).
struct Experts {
  int64_t E, H, I;
  std::vector<float> gu, dn;  // bf16-rounded values, [E, 2I, H] and [E, H, I]
  DeviceBuffer dgu, ddn, tgu, tdn;          // bf16 copies and their tables
  DeviceBuffer fgu, fdn, tgu32, tdn32;      // the same values in fp32 and their tables
  Experts(int64_t E_, int64_t H_, int64_t I_, uint64_t seed)
      : E(E_), H(H_), I(I_), gu(uniform(size_t(E * 2 * I * H), -0.1f, 0.1f, seed)),
        dn(uniform(size_t(E * H * I), -0.1f, 0.1f, seed + 1)), dgu(gu.size() * 2), ddn(dn.size() * 2),
        tgu(size_t(E) * 8), tdn(size_t(E) * 8), fgu(gu.size() * 4), fdn(dn.size() * 4), tgu32(size_t(E) * 8),
        tdn32(size_t(E) * 8) {
    dgu.upload(to_bf16(gu)), ddn.upload(to_bf16(dn));  // rounds gu and dn in place
    fgu.upload(gu), fdn.upload(dn);
    std::vector<const uint16_t*> pg(static_cast<size_t>(E)), pd(static_cast<size_t>(E));
    std::vector<const float*> fg(static_cast<size_t>(E)), fd(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) {
      pg[size_t(e)] = held(e) ? dgu.as<uint16_t>() + e * 2 * I * H : nullptr;
      pd[size_t(e)] = held(e) ? ddn.as<uint16_t>() + e * H * I : nullptr;
      fg[size_t(e)] = held(e) ? fgu.as<float>() + e * 2 * I * H : nullptr;
      fd[size_t(e)] = held(e) ? fdn.as<float>() + e * H * I : nullptr;
    }
    tgu.upload(pg), tdn.upload(pd), tgu32.upload(fg), tdn32.upload(fd);
  }
  static bool held(int64_t e) { return e % 5 != 3; }
};

// f32: the expert tables point at fp32 copies of the same (bf16-representable) weights.
// grouped: the slots go through the device plan (moe_plan_bytes), each expert read once for its tokens.
// ids_ready: the down pass may load ids, table and weights before its programmatic-launch wait (launched here
// without one, so this checks the reordered kernel's results, not the overlap).
void run_experts(int64_t E, int64_t H, int64_t I, int64_t n, int64_t k, bool accumulate, uint64_t seed,
                 bool f32 = false, bool grouped = false, bool ids_ready = false, int32_t early_id = -1) {
  Experts ex(E, H, I, seed);
  std::vector<float> x = uniform(size_t(n * H), -1, 1, seed + 2), w = uniform(size_t(n * k), 0.05f, 1, seed + 3);
  std::vector<float> out0 = uniform(size_t(n * H), -1, 1, seed + 4);
  std::vector<int32_t> ids(size_t(n * k));
  std::mt19937_64 rng(seed + 5);
  for (int64_t t = 0; t < n; ++t) {  // k distinct experts per token
    std::vector<int32_t> all(static_cast<size_t>(E));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    std::copy(all.begin(), all.begin() + k, ids.begin() + t * k);
    if (early_id >= 0) {  // the last slot is early_id (the shared expert's form), the others distinct from it
      auto it = std::find(all.begin(), all.begin() + k, early_id);
      if (it != all.begin() + k) ids[size_t(t * k + (it - all.begin()))] = all[size_t(k)];
      ids[size_t(t * k + k - 1)] = early_id;
    }
  }
  const int64_t S = n * k;
  DeviceBuffer dx(x.size() * 4), dw(w.size() * 4), di(ids.size() * 4), dact(size_t(S * I) * 4),
      dact_ref(size_t(S * I) * 4), dout(out0.size() * 4);
  dx.upload(x), dw.upload(w), di.upload(ids), dout.upload(out0);

  // Reference activations: ref::linear on the bf16-rounded weights + ref::swiglu; 0 for experts not held.
  std::vector<float> act_ref(size_t(S * I), 0.0f), gu(size_t(2 * I));
  for (int64_t s = 0; s < S; ++s) {
    const int64_t e = ids[size_t(s)];
    if (!Experts::held(e)) continue;
    ref::LinearParams l;
    l.x = x.data() + (s / k) * H, l.w = ex.gu.data() + e * 2 * I * H, l.y = gu.data(), l.M = 1, l.N = 2 * I, l.K = H;
    ref::linear(l);
    ref::SwigluParams sw;
    sw.gu = gu.data(), sw.out = act_ref.data() + s * I, sw.rows = 1, sw.I = I;
    ref::swiglu(sw);
  }
  dact_ref.upload(act_ref);

  kernels::MoeGateUpParams g;
  g.x = dx.as<float>(), g.ids = di.as<int32_t>(), g.act = dact.as<float>();
  if (f32) g.gate_up_f32 = ex.tgu32.as<const float*>();
  else g.gate_up = ex.tgu.as<const uint16_t*>();
  g.n = n, g.k = k, g.H = H, g.I = I, g.early_id = early_id;
  DeviceBuffer dplan(kernels::moe_plan_bytes(n, k));
  if (grouped) g.plan = dplan.as<int32_t>();
  kernels::launch_moe_gate_up_swiglu(g, nullptr);
  kernels::MoeDownParams d;
  d.act = dact_ref.as<float>(), d.ids = di.as<int32_t>(), d.weights = dw.as<float>();
  if (f32) d.down_f32 = ex.tdn32.as<const float*>();
  else d.down = ex.tdn.as<const uint16_t*>();
  d.out = dout.as<float>();
  d.n = n, d.k = k, d.H = H, d.I = I, d.accumulate = accumulate, d.ids_ready = ids_ready;
  if (grouped) d.plan = dplan.as<int32_t>();
  DeviceBuffer dws(kernels::moe_down_workspace_bytes(n, k, H));
  d.workspace = dws.as<float>();
  kernels::launch_moe_down_combine(d, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());

  // Reference combine: per slot ref::linear, weighted sum over j ascending in double.
  std::vector<float> out_ref(static_cast<size_t>(n * H)), y(static_cast<size_t>(H));
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> acc(size_t(H), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t s = t * k + j, e = ids[size_t(s)];
      if (!Experts::held(e)) continue;
      ref::LinearParams l;
      l.x = act_ref.data() + s * I, l.w = ex.dn.data() + e * H * I, l.y = y.data(), l.M = 1, l.N = H, l.K = I;
      ref::linear(l);
      for (int64_t h = 0; h < H; ++h) acc[size_t(h)] += double(w[size_t(s)]) * y[size_t(h)];
    }
    for (int64_t h = 0; h < H; ++h)
      out_ref[size_t(t * H + h)] = float(acc[size_t(h)] + (accumulate ? out0[size_t(t * H + h)] : 0.0));
  }
  const std::string tag = "E=" + std::to_string(E) + " H=" + std::to_string(H) + " I=" + std::to_string(I) +
                          " n=" + std::to_string(n) + " k=" + std::to_string(k) + (accumulate ? " accumulate" : "") +
                          (f32 ? " f32 weights" : "") + (grouped ? " grouped" : "") + (ids_ready ? " ids_ready" : "") +
                          (early_id >= 0 ? " early_id " + std::to_string(early_id) : "");
  const auto act = dact.download<float>(size_t(S * I));
  EXPECT_TRUE(close_f32("gate_up+swiglu " + tag, act, act_ref));
  for (int64_t s = 0; s < S; ++s) {  // slots of experts not held are exactly 0
    if (Experts::held(ids[size_t(s)])) continue;
    for (int64_t i = 0; i < I; ++i) ASSERT_EQ(act[size_t(s * I + i)], 0.0f) << tag << " slot " << s;
  }
  const std::vector<float> out = dout.download<float>(out_ref.size());
  EXPECT_TRUE(close_f32("down+combine " + tag, out, out_ref));
}

TEST(MoeExpertKernels, MatchRefWithNullExperts) {
  SKIP_WITHOUT_CUDA();
  run_experts(16, 2048, 512, 1, 8, false, 200);  // Ling-2.0 mini-like dims, one decode token
  run_experts(16, 512, 128, 7, 8, true, 210);
  run_experts(20, 264, 40, 16, 6, false, 220);   // H, I tails (not multiples of 256)
  run_experts(10, 1032, 8, 3, 1, true, 230);     // k = 1, the smallest I
  run_experts(64, 768, 256, 16, 8, false, 240);  // 128 slots, experts repeated across tokens
  run_experts(16, 512, 128, 7, 8, true, 250, true);  // fp32 weights (fp32 checkpoints)
  run_experts(20, 264, 40, 3, 6, false, 260, true);
  // one token: 9 slots (8 routed + the shared expert's slot), I 1024 with fp32 weights, an I tail with k 1, and
  // I 2048
  run_experts(16, 2048, 512, 1, 9, true, 270);
  run_experts(12, 264, 1024, 1, 3, false, 280, true);
  run_experts(10, 1032, 40, 1, 1, true, 290);
  run_experts(16, 512, 2048, 1, 8, false, 295);
  // the engine's decode form of the narrow one-pass down kernel (loads before the wait), with an H tail
  run_experts(16, 2048, 512, 1, 9, true, 296, false, false, true);
  run_experts(20, 264, 40, 2, 6, false, 297, false, false, true);
  // the shared expert as every token's last slot (early_id: those CTAs first, loads before the wait): one token
  // at Ring-mini-like dims, several tokens, a 2·2,048-wide H (two load steps), fp32 weights, an expert not held
  run_experts(17, 2048, 512, 1, 9, true, 298, false, false, true, 16);
  run_experts(20, 264, 40, 3, 6, false, 299, false, false, false, 19);
  run_experts(9, 4104, 24, 2, 3, false, 301, false, false, false, 7);
  run_experts(12, 264, 64, 2, 4, true, 302, true, false, false, 11);
  run_experts(10, 512, 32, 1, 5, false, 303, false, false, false, 8);  // 8 % 5 == 3: not held
  // the one-token narrow pass with 16 slots (its widest form), an H tail, loads before the wait
  run_experts(20, 1032, 512, 1, 16, false, 306, false, false, true);
}

// The lean per-row gate_up (MoeGateUpParams::lean: three CTAs per SM, both rows' dots on one load of x) and the
// L2 requests of the later waves' rows (l2_later), alone and together, against the default kernel on the same
// inputs, act bit for bit: Ring-mini-like dims with the shared expert first (one token; 576 CTAs, more than one
// wave), several tokens with H and I tails, k 1, an early expert not held, 2 tokens of I 1,024 (2,048 CTAs), and H
// past 2,048 (the launcher keeps the default kernel there).
TEST(MoeExpertKernels, LeanAndL2GateUpEqualDefault) {
  SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t E, H, I, n, k;
    int32_t early;
  };
  for (const Case c : {Case{17, 2048, 512, 1, 9, 16}, Case{20, 264, 40, 3, 6, 19}, Case{10, 1032, 40, 1, 1, -1},
                       Case{10, 512, 32, 1, 5, 8}, Case{16, 2048, 1024, 2, 8, -1}, Case{9, 4104, 24, 2, 3, 7}}) {
    Experts ex(c.E, c.H, c.I, 700 + uint64_t(c.H));
    const std::vector<float> x = uniform(size_t(c.n * c.H), -1, 1, 710 + uint64_t(c.I));
    std::vector<int32_t> ids(size_t(c.n * c.k));
    std::mt19937_64 rng(720 + uint64_t(c.k));
    for (int64_t t = 0; t < c.n; ++t)
      for (int64_t j = 0; j < c.k; ++j)
        ids[size_t(t * c.k + j)] = j == c.k - 1 && c.early >= 0 ? c.early : int32_t(rng() % uint64_t(c.E));
    const size_t acts = size_t(c.n * c.k * c.I);
    DeviceBuffer dx(x.size() * 4), di(ids.size() * 4), da(acts * 4), db(acts * 4);
    dx.upload(x), di.upload(ids);
    kernels::MoeGateUpParams g;
    g.x = dx.as<float>(), g.ids = di.as<int32_t>(), g.gate_up = ex.tgu.as<const uint16_t*>(), g.act = da.as<float>();
    g.n = c.n, g.k = c.k, g.H = c.H, g.I = c.I, g.early_id = c.early, g.table_entries = c.E;
    kernels::launch_moe_gate_up_swiglu(g, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::string tag = "E=" + std::to_string(c.E) + " H=" + std::to_string(c.H) + " I=" + std::to_string(c.I) +
                            " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k);
    const std::vector<float> a = da.download<float>(acts);
    EXPECT_TRUE(std::any_of(a.begin(), a.end(), [](float v) { return v != 0.0f; })) << tag << ": all zero";
    for (const auto& [lean, l2] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
      TEST_CUDA(cudaMemset(db.as<void>(), 0xff, acts * 4));
      g.act = db.as<float>(), g.lean = lean, g.l2_later = l2;
      kernels::launch_moe_gate_up_swiglu(g, nullptr);
      TEST_CUDA(cudaDeviceSynchronize());
      EXPECT_EQ(a, db.download<float>(acts)) << tag << (lean ? " lean" : "") << (l2 ? " l2_later" : "");
    }
  }
}

// Slots grouped by expert (bf16 tensor-core tiles): one token; experts shared by up to 8 and 16 tokens (one and
// two token tiles); 20 tokens on 4 experts (a group of 20: the token loop); H / I tails; null experts; the plan
// with fp32 weights (written, not used).
TEST(MoeExpertKernels, GroupedByExpertMatchRef) {
  SKIP_WITHOUT_CUDA();
  run_experts(16, 2048, 512, 1, 8, false, 300, false, true);
  run_experts(8, 512, 128, 8, 6, true, 310, false, true);
  run_experts(8, 264, 40, 16, 5, false, 320, false, true);
  run_experts(4, 1032, 72, 20, 3, true, 330, false, true);
  run_experts(64, 768, 256, 16, 8, false, 340, false, true);
  run_experts(16, 512, 128, 7, 8, true, 350, true, true);
}

// The fused one-token MoE kernel (launch_moe_fused: router, gate_up + SwiGLU and down + combine in one launch
// with grid barriers) on the same inputs as launch_moe_router: logits, ids and weights equal bit for bit; act
// against ref::linear + ref::swiglu on the bf16-rounded weights and out against the per-slot ref::linear summed
// in double (close_f32). Ring-mini dims (E 256, k 8 + the shared slot, H 2048, I 512), H 4096 (one pair per
// stage, 32 down rows per CTA on 132 SMs), H / I tails, experts not held (null table entries), accumulate; the
// same counters over every launch (each must leave them zero).
void run_fused(int64_t E, int64_t k, int64_t n_group, int64_t topk_group, int64_t H, int64_t I, bool shared,
               bool accumulate, DeviceBuffer& sync, uint64_t seed) {
  int dev = 0, sms = 0;
  TEST_CUDA(cudaGetDevice(&dev));
  TEST_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  ASSERT_TRUE(kernels::moe_fused_supported(H, I, E, k, n_group, topk_group, shared, sms));
  const int64_t slots = k + (shared ? 1 : 0), entries = E + (shared ? 1 : 0);  // entry E: the shared expert
  // A pool of 12 distinct experts: table entry e is block e % 12 (null when Experts::held(e) is false).
  constexpr int64_t kPool = 12;
  Experts ex(kPool, H, I, seed);
  std::vector<const uint16_t*> tg(static_cast<size_t>(entries)), td(static_cast<size_t>(entries));
  for (int64_t e = 0; e < entries; ++e) {
    tg[size_t(e)] = Experts::held(e) ? ex.dgu.as<uint16_t>() + (e % kPool) * 2 * I * H : nullptr;
    td[size_t(e)] = Experts::held(e) ? ex.ddn.as<uint16_t>() + (e % kPool) * H * I : nullptr;
  }
  DeviceBuffer tgu(size_t(entries) * 8), tdn(size_t(entries) * 8);
  tgu.upload(tg), tdn.upload(td);
  std::vector<float> x = uniform(size_t(H), -1, 1, seed + 1), rw = uniform(size_t(E * H), -0.05f, 0.05f, seed + 2);
  std::vector<float> bias = uniform(size_t(E), -0.5f, 0.5f, seed + 3), out0 = uniform(size_t(H), -1, 1, seed + 4);
  DeviceBuffer dx(x.size() * 4), drw(rw.size() * 4), db(bias.size() * 4), l1(size_t(E) * 4), l2(size_t(E) * 4);
  DeviceBuffer i1(size_t(slots) * 4), i2(size_t(slots) * 4), w1(size_t(slots) * 4), w2(size_t(slots) * 4);
  DeviceBuffer counter(4), dact(size_t(slots * I) * 4), dout(size_t(H) * 4);
  dx.upload(x), drw.upload(rw), db.upload(bias), dout.upload(out0);
  TEST_CUDA(cudaMemset(counter.as<void>(), 0, 4));
  kernels::MoeRouterParams r;
  r.route.bias = db.as<float>(), r.route.n = 1, r.route.E = E, r.route.k = k, r.route.n_group = n_group;
  r.route.topk_group = topk_group, r.route.routed_scaling_factor = 2.5f, r.route.shared_slot = shared;
  r.route.logits = l1.as<float>(), r.route.topk_ids = i1.as<int32_t>(), r.route.topk_weights = w1.as<float>();
  r.x = dx.as<float>(), r.H = H, r.w = drw.as<float>(), r.logits = l1.as<float>(), r.counter = counter.as<unsigned>();
  kernels::launch_moe_router(r, nullptr);
  kernels::MoeFusedParams f;
  f.router = r;
  f.router.logits = l2.as<float>(), f.router.route.logits = l2.as<float>();
  f.router.route.topk_ids = i2.as<int32_t>(), f.router.route.topk_weights = w2.as<float>();
  f.gate_up = tgu.as<const uint16_t*>(), f.down = tdn.as<const uint16_t*>();
  f.act = dact.as<float>(), f.out = dout.as<float>(), f.I = I, f.accumulate = accumulate;
  f.l2_gate_up = accumulate;  // the L2 requests of the routed rows (a hint: the same results) in half the cases
  f.sync = sync.as<unsigned>();
  kernels::launch_moe_fused(f, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const std::string tag = "E=" + std::to_string(E) + " k=" + std::to_string(k) + " H=" + std::to_string(H) +
                          " I=" + std::to_string(I) + (shared ? " shared slot" : "") + (accumulate ? " accumulate" : "");
  ASSERT_EQ(l1.download<float>(size_t(E)), l2.download<float>(size_t(E))) << tag << " logits";
  const auto ids = i2.download<int32_t>(size_t(slots));
  const auto wts = w2.download<float>(size_t(slots));
  ASSERT_EQ(i1.download<int32_t>(size_t(slots)), ids) << tag << " ids";
  ASSERT_EQ(w1.download<float>(size_t(slots)), wts) << tag << " weights";
  ASSERT_EQ(sync.download<unsigned>(2), (std::vector<unsigned>{0u, 0u})) << tag << " counters";

  std::vector<float> act_ref(size_t(slots * I), 0.0f), gu(size_t(2 * I)), y(static_cast<size_t>(H));
  std::vector<double> acc(static_cast<size_t>(H), 0.0);
  int held = 0;
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = ids[size_t(s)];
    if (!Experts::held(e)) continue;
    ++held;
    ref::LinearParams l;
    l.x = x.data(), l.w = ex.gu.data() + (e % kPool) * 2 * I * H, l.y = gu.data(), l.M = 1, l.N = 2 * I, l.K = H;
    ref::linear(l);
    ref::SwigluParams sw;
    sw.gu = gu.data(), sw.out = act_ref.data() + s * I, sw.rows = 1, sw.I = I;
    ref::swiglu(sw);
    ref::LinearParams d;
    d.x = act_ref.data() + s * I, d.w = ex.dn.data() + (e % kPool) * H * I, d.y = y.data(), d.M = 1, d.N = H, d.K = I;
    ref::linear(d);
    for (int64_t h = 0; h < H; ++h) acc[size_t(h)] += double(wts[size_t(s)]) * y[size_t(h)];
  }
  std::vector<float> out_ref(static_cast<size_t>(H));
  for (int64_t h = 0; h < H; ++h) out_ref[size_t(h)] = float(acc[size_t(h)] + (accumulate ? out0[size_t(h)] : 0.0));
  EXPECT_TRUE(close_f32("fused gate_up+swiglu " + tag, dact.download<float>(act_ref.size()), act_ref));
  EXPECT_TRUE(close_f32("fused down+combine " + tag, dout.download<float>(size_t(H)), out_ref));
  std::printf("  fused %s: %d of %lld slots held\n", tag.c_str(), held, static_cast<long long>(slots));
}

TEST(MoeFusedKernel, MatchesRouterAndRef) {
  SKIP_WITHOUT_CUDA();
  DeviceBuffer sync(8);
  TEST_CUDA(cudaMemset(sync.as<void>(), 0, 8));
  run_fused(256, 8, 8, 4, 2048, 512, true, false, sync, 900);   // Ring-mini dims
  run_fused(256, 8, 8, 4, 2048, 512, true, true, sync, 910);
  run_fused(64, 6, 1, 1, 1024, 256, false, false, sync, 920);   // four pairs per stage
  run_fused(512, 8, 16, 8, 4096, 128, false, true, sync, 930);  // one pair per stage, E 512
  run_fused(20, 4, 4, 2, 264, 40, true, false, sync, 940);      // H / I tails, few router rows
  run_fused(16, 3, 2, 1, 1552, 72, false, true, sync, 950);     // two pairs per stage, a column tail
  int dev = 0, sms = 0;
  TEST_CUDA(cudaGetDevice(&dev));
  TEST_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  EXPECT_FALSE(kernels::moe_fused_supported(8192, 2048, 256, 8, 8, 4, true, sms));  // Ling-2.5 dims: three launches
  kernels::MoeFusedParams bad;
  bad.router.route.n = 2, bad.router.route.E = 256, bad.router.route.k = 8, bad.router.route.n_group = 8;
  bad.router.route.topk_group = 4, bad.router.H = 2048, bad.I = 512;
  EXPECT_THROW(kernels::launch_moe_fused(bad, nullptr), Error);
}

TEST(MoeExpertKernels, RefuseBadShapes) {
  alignas(16) static float buf[64];
  const uint16_t* const* table = reinterpret_cast<const uint16_t* const*>(buf);
  kernels::MoeGateUpParams g;
  g.x = buf, g.ids = reinterpret_cast<const int32_t*>(buf), g.gate_up = table, g.act = buf;
  g.n = 1, g.k = 8, g.H = 12, g.I = 8;
  EXPECT_THROW(kernels::launch_moe_gate_up_swiglu(g, nullptr), Error);
  kernels::MoeDownParams d;
  d.act = buf + 1, d.ids = g.ids, d.down = table, d.weights = buf, d.out = buf;
  d.n = 1, d.k = 8, d.H = 16, d.I = 8, d.workspace = buf;
  EXPECT_THROW(kernels::launch_moe_down_combine(d, nullptr), Error);
  d.act = buf, d.k = 33;
  EXPECT_THROW(kernels::launch_moe_down_combine(d, nullptr), Error);
  d.k = 8, d.down_f32 = reinterpret_cast<const float* const*>(buf);  // both weight tables set
  EXPECT_THROW(kernels::launch_moe_down_combine(d, nullptr), Error);
  d.down_f32 = nullptr, d.workspace = nullptr;  // no workspace
  EXPECT_THROW(kernels::launch_moe_down_combine(d, nullptr), Error);
  g.H = 16, g.n = 600, g.plan = reinterpret_cast<int32_t*>(buf);  // 4800 slots: more than a plan holds
  EXPECT_THROW(kernels::launch_moe_gate_up_swiglu(g, nullptr), Error);
}

}  // namespace
}  // namespace ling::test
