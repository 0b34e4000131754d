// Decode GEMV (kernels/gemv, gemv.h) vs lib/ref: bf16 weights against ref::linear on the same bf16-rounded
// weights (fp32 kernel tolerance, kernel_test_util.h), fp32 router weights against a double-precision reference
// at rtol 1e-5. Shapes cover both kernel paths (N ≤ 1024: block per row; larger: warp per row), K tails that are
// not multiples of the 1024-element unrolled step, every M template (1..16), strides, bias and accumulate.
// The refusals (M > 16, K % 8, misalignment) need no device.
#include <gtest/gtest.h>

#include <memory>

#include "kernel_test_util.h"
#include "ling/kernels/gemv.h"
#include "ling/kernels/launch.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

struct GemvCase {
  int64_t M, N, K;
  bool bias, accumulate, f32;
  int64_t pad_x = 0, pad_y = 0;  // extra row stride of x (multiple of 4) and y
};

void run_gemv(const GemvCase& c, uint64_t seed) {
  const int64_t ldx = c.K + c.pad_x, ldy = c.N + c.pad_y;
  std::vector<float> x = uniform(size_t(c.M * ldx), -1, 1, seed), w = uniform(size_t(c.N * c.K), -1, 1, seed + 1);
  std::vector<float> bias = uniform(size_t(c.N), -1, 1, seed + 2), y0 = uniform(size_t(c.M * ldy), -1, 1, seed + 3);
  DeviceBuffer dx(x.size() * 4), dw(w.size() * (c.f32 ? 4 : 2)), db(bias.size() * 4), dy(y0.size() * 4);
  if (c.f32) dw.upload(w);
  else dw.upload(to_bf16(w));  // w now holds the bf16-rounded values the kernel sees
  dx.upload(x), db.upload(bias), dy.upload(y0);

  kernels::GemvParams p;
  p.x = dx.as<float>(), p.ldx = ldx, p.bias = c.bias ? db.as<float>() : nullptr, p.y = dy.as<float>(), p.ldy = ldy;
  if (c.f32) p.w_f32 = dw.as<float>();
  else p.w = dw.as<uint16_t>();
  p.M = c.M, p.N = c.N, p.K = c.K, p.accumulate = c.accumulate;
  kernels::launch_gemv(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const std::vector<float> got = dy.download<float>(y0.size());

  const std::string tag = std::string(c.f32 ? "f32" : "bf16") + " M=" + std::to_string(c.M) + " N=" +
                          std::to_string(c.N) + " K=" + std::to_string(c.K) + (c.bias ? " bias" : "") +
                          (c.accumulate ? " accumulate" : "");
  std::vector<float> want = y0;
  if (c.f32) {  // double reference, fp32-exact-ish
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double s = c.bias ? bias[size_t(n)] : 0.0;
        for (int64_t k = 0; k < c.K; ++k) s += double(x[size_t(m * ldx + k)]) * double(w[size_t(n * c.K + k)]);
        float& o = want[size_t(m * ldy + n)];
        o = c.accumulate ? float(double(o) + s) : float(s);
      }
    EXPECT_TRUE(close_reported(tag, got, want, tol(1e-5, 1e-5 * rms(want), 1e-10)));
  } else {
    ref::LinearParams r;
    r.x = x.data(), r.w = w.data(), r.bias = c.bias ? bias.data() : nullptr, r.y = want.data();
    r.M = c.M, r.N = c.N, r.K = c.K, r.ldx = ldx, r.ldy = ldy, r.accumulate = c.accumulate;
    ref::linear(r);
    EXPECT_TRUE(close_f32(tag, got, want));
  }
  // The padding columns of y are untouched.
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = c.N; n < ldy; ++n) ASSERT_EQ(got[size_t(m * ldy + n)], y0[size_t(m * ldy + n)]) << tag;
}

TEST(GemvKernel, Bf16EveryBatchSize) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 10;
  for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 16}) {
    run_gemv({M, 2053, 1288, false, false, false}, seed += 7);  // warp per row, K tail
    run_gemv({M, 300, 2056, true, false, false}, seed += 7);    // block per row
  }
}

TEST(GemvKernel, Bf16BiasAccumulateStrides) {
  SKIP_WITHOUT_CUDA();
  run_gemv({1, 6144, 2048, true, true, false, 4, 3}, 31);
  run_gemv({7, 1025, 8, true, true, false, 8, 1}, 32);
  run_gemv({16, 4096, 4096, false, true, false}, 33);
  run_gemv({3, 1, 64, true, false, false}, 34);
}

TEST(GemvKernel, F32RouterWeightsDoubleReference) {
  SKIP_WITHOUT_CUDA();
  run_gemv({1, 256, 8192, false, false, true}, 41);   // Ling-2.5-1T router
  run_gemv({4, 64, 2048, true, false, true}, 42);     // Ling-2.0-like
  run_gemv({16, 512, 1032, false, true, true, 4, 2}, 43);
  run_gemv({2, 1500, 2048, true, false, true}, 44);    // many-row path with fp32 weights
}

// Programmatic dependent launch (kernels/launch.h): each GEMV of a chain v ← W_i·v starts while the previous one
// finishes and prefetches its weights before waiting for v; the chain must equal the host's, step after step
// reading the previous step's output. The block-per-row path (N ≤ 1024) closes the chain.
TEST(GemvKernel, ProgrammaticLaunchChain) {
  SKIP_WITHOUT_CUDA();
  constexpr int64_t D = 2048, kSteps = 8, NL = 640;
  for (int64_t M : {1, 3}) {
    std::vector<std::vector<float>> w(kSteps + 1);
    std::vector<std::unique_ptr<DeviceBuffer>> dw;
    for (int64_t i = 0; i <= kSteps; ++i) {
      const int64_t N = i == kSteps ? NL : D;
      w[size_t(i)] = uniform(size_t(N * D), -1.0f / 32, 1.0f / 32, 900 + uint64_t(i));
      dw.push_back(std::make_unique<DeviceBuffer>(w[size_t(i)].size() * 2));
      dw.back()->upload(to_bf16(w[size_t(i)]));
    }
    std::vector<float> v = uniform(size_t(M * D), -1, 1, 899);
    DeviceBuffer a(v.size() * 4), b(v.size() * 4);
    a.upload(v);
    kernels::set_programmatic_launch(true);
    for (int64_t i = 0; i <= kSteps; ++i) {
      kernels::GemvParams p;
      p.x = (i % 2 ? b : a).as<float>(), p.y = (i % 2 ? a : b).as<float>(), p.w = dw[size_t(i)]->as<uint16_t>();
      p.M = M, p.N = i == kSteps ? NL : D, p.K = D, p.ldx = D, p.ldy = D;
      kernels::launch_gemv(p, nullptr);
    }
    kernels::set_programmatic_launch(false);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::vector<float> got = (kSteps % 2 ? a : b).download<float>(size_t(M * D));
    for (int64_t i = 0; i <= kSteps; ++i) {  // host chain in double on the same bf16 weights
      const int64_t N = i == kSteps ? NL : D;
      std::vector<float> nv(size_t(M * D), 0.0f);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double s = 0;
          for (int64_t k = 0; k < D; ++k) s += double(w[size_t(i)][size_t(n * D + k)]) * v[size_t(m * D + k)];
          nv[size_t(m * D + n)] = float(s);
        }
      v = nv;
    }
    std::vector<float> g, r;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < NL; ++n) g.push_back(got[size_t(m * D + n)]), r.push_back(v[size_t(m * D + n)]);
    EXPECT_TRUE(close_f32("PDL chain M=" + std::to_string(M), g, r));
  }
}

// The add + norm tail (AddNormTail, norm.h) on one-row GEMVs: y equals the same GEMV without a tail bit for bit,
// and h += y, a = RMSNorm(h)·w against ref::add_rms_norm on that y. Both paths (warp per row, with a last CTA of
// half its warps past N; block per row), bf16 and fp32 weights, bias and accumulate; the same counter through a
// chain of launches under programmatic launch (each must leave it zero; each reads the h the one before wrote).
TEST(GemvKernel, AddNormTail) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t N, K; bool f32, bias, accumulate; };
  const Case cases[] = {{2048, 2048, false, false, false}, {2052, 1032, false, true, true}, {520, 2048, false, false, false},
                        {1028, 64, true, true, false}, {8192, 1024, false, false, true}};
  DeviceBuffer counter(4);
  TEST_CUDA(cudaMemset(counter.as<void>(), 0, 4));
  uint64_t seed = 1200;
  for (const Case& c : cases) {
    const int64_t D = c.N;
    std::vector<float> x = uniform(size_t(c.K), -1, 1, seed += 5), w = uniform(size_t(c.N * c.K), -0.1f, 0.1f, seed + 1);
    std::vector<float> bias = uniform(size_t(c.N), -1, 1, seed + 2), y0 = uniform(size_t(c.N), -1, 1, seed + 3);
    std::vector<float> h = uniform(size_t(D), -2, 2, seed + 4), nw = uniform(size_t(D), 0.5f, 1.5f, seed + 5);
    DeviceBuffer dx(x.size() * 4), dw(w.size() * (c.f32 ? 4 : 2)), db(bias.size() * 4), dplain(y0.size() * 4),
        dy(y0.size() * 4), dh(h.size() * 4), dnw(nw.size() * 4), da(size_t(D) * 4);
    if (c.f32) dw.upload(w);
    else dw.upload(to_bf16(w));
    dx.upload(x), db.upload(bias), dplain.upload(y0), dy.upload(y0), dh.upload(h), dnw.upload(nw);
    kernels::GemvParams p;
    p.x = dx.as<float>(), p.bias = c.bias ? db.as<float>() : nullptr, p.y = dplain.as<float>();
    if (c.f32) p.w_f32 = dw.as<float>();
    else p.w = dw.as<uint16_t>();
    p.M = 1, p.N = c.N, p.K = c.K, p.accumulate = c.accumulate;
    kernels::launch_gemv(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::vector<float> plain = dplain.download<float>(y0.size());
    std::vector<float> want_h = h, want_a(static_cast<size_t>(D));
    kernels::set_programmatic_launch(true);
    for (int rep = 0; rep < 3; ++rep) {  // y restarts from y0 each time; h accumulates y every launch
      dy.upload(y0);
      p.y = dy.as<float>();
      p.tail.norm.h = dh.as<float>(), p.tail.norm.w = dnw.as<float>(), p.tail.norm.y = da.as<float>();
      p.tail.norm.rows = 1, p.tail.norm.dim = D, p.tail.norm.eps = 1e-6;
      p.tail.counter = counter.as<unsigned>();
      kernels::launch_gemv(p, nullptr);
      AddRmsNormParams r;
      r.h = want_h.data(), r.d = plain.data(), r.w = nw.data(), r.y = want_a.data(), r.rows = 1, r.dim = D, r.eps = 1e-6;
      ref::add_rms_norm(r);
    }
    kernels::set_programmatic_launch(false);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::string tag = "tail N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + (c.f32 ? " f32" : " bf16");
    EXPECT_EQ(dy.download<float>(y0.size()), plain) << tag;
    EXPECT_TRUE(close_f32(tag + " h", dh.download<float>(size_t(D)), want_h));
    EXPECT_TRUE(close_f32(tag + " a", da.download<float>(size_t(D)), want_a));
  }
  EXPECT_EQ(counter.download<unsigned>(1)[0], 0u);
  kernels::GemvParams bad;  // a tail on two rows, and one whose dim is not the output width
  alignas(16) static float buf[64];
  bad.x = buf, bad.w_f32 = buf, bad.y = buf, bad.M = 2, bad.N = 8, bad.K = 8;
  bad.tail.norm.h = buf, bad.tail.norm.w = buf, bad.tail.norm.y = buf, bad.tail.norm.dim = 8;
  bad.tail.counter = reinterpret_cast<unsigned*>(buf);
  EXPECT_THROW(kernels::launch_gemv(bad, nullptr), Error);
  bad.M = 1, bad.tail.norm.dim = 12;
  EXPECT_THROW(kernels::launch_gemv(bad, nullptr), Error);
}

// bf16 M = 1 weights kept as raw bits (the default) and widened at the load (raw_bf16 = false): the same sums, so
// the same outputs bit for bit (a K tail, a partial last CTA, bias and accumulate).
TEST(GemvKernel, RawAndWidenedBf16Equal) {
  SKIP_WITHOUT_CUDA();
  for (const auto& [N, K] : {std::pair<int64_t, int64_t>{2053, 1288}, {6144, 2048}, {1032, 8200}}) {
    std::vector<float> x = uniform(size_t(K), -1, 1, uint64_t(N + K)), w = uniform(size_t(N * K), -1, 1, uint64_t(N));
    std::vector<float> bias = uniform(size_t(N), -1, 1, uint64_t(K)), y0 = uniform(size_t(N), -1, 1, 7);
    DeviceBuffer dx(x.size() * 4), dw(w.size() * 2), db(bias.size() * 4), d1(y0.size() * 4), d2(y0.size() * 4);
    dx.upload(x), dw.upload(to_bf16(w)), db.upload(bias), d1.upload(y0), d2.upload(y0);
    kernels::GemvParams p;
    p.x = dx.as<float>(), p.w = dw.as<uint16_t>(), p.bias = db.as<float>(), p.M = 1, p.N = N, p.K = K;
    p.accumulate = true, p.y = d1.as<float>();
    kernels::launch_gemv(p, nullptr);
    p.raw_bf16 = false, p.y = d2.as<float>();
    kernels::launch_gemv(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    EXPECT_EQ(d1.download<float>(y0.size()), d2.download<float>(y0.size())) << "N=" << N << " K=" << K;
  }
}

// The add + norm head (AddNormHead, norm.h) on one-row bf16 GEMVs as a decode step runs it: a chain of launches
// under programmatic launch in which each GEMV's output is the next head's d and the residual alternates between
// two buffers (each head reads h where the one before wrote it), against the same chain of launch_add_rms_norm +
// launch_gemv. The normed row, the residual and every GEMV output equal bit for bit (the fp64 sums of squares
// differ only in their order, far below the float rounding of inv). Dims 1,032 (two threads with a second float4)
// to 8,192 (two load rounds per thread), a partial last CTA (N % 8 != 0), raw and widened weights, bias and
// accumulate on the last link;
// the first link is a norm of h alone (no d, no h_out).
TEST(GemvKernel, AddNormHead) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t D, N_last; bool raw, bias, accumulate; };
  const Case cases[] = {{2048, 5120, true, false, false}, {2048, 2053, true, true, false},
                        {8192, 1033, false, false, true}, {1032, 4100, true, true, true}};
  constexpr int kLinks = 5;
  uint64_t seed = 1300;
  for (const Case& c : cases) {
    const int64_t D = c.D;
    std::vector<std::unique_ptr<DeviceBuffer>> dw;  // links 0..3: [D, D] (outputs: the next link's d); 4: [N_last, D]
    for (int l = 0; l < kLinks; ++l) {
      const int64_t N = l + 1 < kLinks ? D : c.N_last;
      std::vector<float> w = uniform(size_t(N * D), -1.0f / 32, 1.0f / 32, seed += 3);
      dw.push_back(std::make_unique<DeviceBuffer>(w.size() * 2));
      dw.back()->upload(to_bf16(w));
    }
    const std::vector<float> h0 = uniform(size_t(D), -2, 2, seed + 1), nw = uniform(size_t(D), 0.5f, 1.5f, seed + 2);
    const std::vector<float> bias = uniform(size_t(c.N_last), -1, 1, seed + 3), y0 = uniform(size_t(c.N_last), -1, 1, seed + 4);
    DeviceBuffer dnw(size_t(D) * 4), db(bias.size() * 4), hr(size_t(D) * 4), ar(size_t(D) * 4), ha(size_t(D) * 4),
        hb(size_t(D) * 4), ah(size_t(D) * 4);
    dnw.upload(nw), db.upload(bias), hr.upload(h0), ha.upload(h0), hb.upload(uniform(size_t(D), -9, 9, seed + 5));  // (overwritten)
    std::vector<std::unique_ptr<DeviceBuffer>> out_ref, out_head;
    for (int l = 0; l < kLinks; ++l) {
      const size_t N = size_t(l + 1 < kLinks ? D : c.N_last);
      out_ref.push_back(std::make_unique<DeviceBuffer>(N * 4)), out_head.push_back(std::make_unique<DeviceBuffer>(N * 4));
      if (l + 1 == kLinks) out_ref.back()->upload(y0), out_head.back()->upload(y0);
    }
    auto gemv = [&](int l, const float* x, float* y, const kernels::AddNormHead& head) {
      kernels::GemvParams p;
      p.x = x, p.w = dw[size_t(l)]->as<uint16_t>(), p.y = y, p.M = 1, p.K = D, p.raw_bf16 = c.raw, p.head = head;
      p.N = l + 1 < kLinks ? D : c.N_last;
      if (l + 1 == kLinks) p.bias = c.bias ? db.as<float>() : nullptr, p.accumulate = c.accumulate;
      kernels::launch_gemv(p, nullptr);
    };
    kernels::set_programmatic_launch(true);
    for (int l = 0; l < kLinks; ++l) {  // the reference chain: h += d; a = RMSNorm(h)·w; out = W a
      AddRmsNormParams r;
      r.h = hr.as<float>(), r.d = l ? out_ref[size_t(l - 1)]->as<float>() : nullptr, r.w = dnw.as<float>();
      r.y = ar.as<float>(), r.rows = 1, r.dim = D, r.eps = 1e-6;
      kernels::launch_add_rms_norm(r, nullptr);
      gemv(l, ar.as<float>(), out_ref[size_t(l)]->as<float>(), {});
    }
    DeviceBuffer* cur = &ha;  // where the residual is; the heads write h + d to the other buffer
    for (int l = 0; l < kLinks; ++l) {
      DeviceBuffer* other = cur == &ha ? &hb : &ha;
      kernels::AddNormHead t;
      t.h_in = cur->as<float>(), t.w = dnw.as<float>(), t.y = ah.as<float>(), t.dim = D, t.eps = 1e-6;
      if (l) t.d = out_head[size_t(l - 1)]->as<float>(), t.h_out = other->as<float>();
      gemv(l, ah.as<float>(), out_head[size_t(l)]->as<float>(), t);
      if (l) cur = other;
    }
    kernels::set_programmatic_launch(false);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::string tag = "head D=" + std::to_string(D) + " N=" + std::to_string(c.N_last) + (c.raw ? " raw" : " wide");
    EXPECT_EQ(ah.download<float>(size_t(D)), ar.download<float>(size_t(D))) << tag << " normed row";
    EXPECT_EQ(cur->download<float>(size_t(D)), hr.download<float>(size_t(D))) << tag << " residual";
    for (int l = 0; l < kLinks; ++l) {
      const size_t N = size_t(l + 1 < kLinks ? D : c.N_last);
      EXPECT_EQ(out_head[size_t(l)]->download<float>(N), out_ref[size_t(l)]->download<float>(N)) << tag << " link " << l;
    }
  }
}

// The gate head (GateHead, norm.h): the one-row bf16 GEMV over GroupRMSNorm(o) · w ⊙ sigmoid(gate) formed by its
// CTAs equals launch_group_norm_gate (in place on a copy of o) followed by the plain GEMV, bit for bit, and leaves
// o as it was. Ring-mini's 2,048 values in 4 groups, 4,096 in 8 (the widest), one group of 1,024, 3 groups of 512;
// the gate row inside a wider row (q‖k‖v‖gate); a partial last CTA, bias and accumulate; raw and widened weights.
// Under programmatic launch, with o written by the kernel just before (a norm of a random row).
TEST(GemvKernel, GateHead) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t W, groups, N; bool raw, bias, accumulate; };
  const Case cases[] = {{2048, 4, 2048, true, false, false}, {4096, 8, 1033, true, true, true},
                        {1024, 1, 4100, false, true, false}, {1536, 3, 2056, true, false, true}};
  uint64_t seed = 1500;
  for (const Case& c : cases) {
    const int64_t W = c.W, row = 4 * W;  // the gate is the last quarter of a q‖k‖v‖gate row
    std::vector<float> w = uniform(size_t(c.N * W), -1.0f / 32, 1.0f / 32, seed += 7);
    const std::vector<float> src = uniform(size_t(W), -2, 2, seed + 1), qkvg = uniform(size_t(row), -3, 3, seed + 2);
    const std::vector<float> gw = uniform(size_t(W), 0.5f, 1.5f, seed + 3), bias = uniform(size_t(c.N), -1, 1, seed + 4);
    const std::vector<float> y0 = uniform(size_t(c.N), -1, 1, seed + 5), nw = uniform(size_t(W), 0.5f, 1.5f, seed + 6);
    DeviceBuffer dw(w.size() * 2), dq(qkvg.size() * 4), dgw(gw.size() * 4), db(bias.size() * 4), dh(src.size() * 4),
        dnw(nw.size() * 4), o(size_t(W) * 4), o_ref(size_t(W) * 4), y_head(y0.size() * 4), y_ref(y0.size() * 4);
    dw.upload(to_bf16(w)), dq.upload(qkvg), dgw.upload(gw), db.upload(bias), dh.upload(src), dnw.upload(nw);
    y_head.upload(y0), y_ref.upload(y0);
    kernels::GemvParams p;
    p.w = dw.as<uint16_t>(), p.M = 1, p.N = c.N, p.K = W, p.raw_bf16 = c.raw;
    p.bias = c.bias ? db.as<float>() : nullptr, p.accumulate = c.accumulate;
    p.x = o.as<float>(), p.y = y_head.as<float>();
    p.gate_head.o = o.as<float>(), p.gate_head.w = dgw.as<float>(), p.gate_head.gate = dq.as<float>() + 3 * W;
    p.gate_head.width = W, p.gate_head.groups = c.groups, p.gate_head.eps = 1e-6;
    AddRmsNormParams producer;  // o = RMSNorm(src) · nw, written right before the GEMV reads it
    producer.h = dh.as<float>(), producer.w = dnw.as<float>(), producer.y = o.as<float>(), producer.rows = 1;
    producer.dim = W, producer.eps = 1e-6;
    kernels::set_programmatic_launch(true);
    kernels::launch_add_rms_norm(producer, nullptr);
    kernels::launch_gemv(p, nullptr);
    kernels::set_programmatic_launch(false);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::vector<float> o_seen = o.download<float>(size_t(W));
    o_ref.upload(o_seen);
    GroupNormGateParams g;  // the reference: the gate in place, then the plain GEMV
    g.o = o_ref.as<float>(), g.w = dgw.as<float>(), g.gate = dq.as<float>() + 3 * W, g.rows = 1, g.width = W;
    g.groups = c.groups, g.eps = 1e-6;
    kernels::launch_group_norm_gate(g, nullptr);
    p.gate_head = {}, p.x = o_ref.as<float>(), p.y = y_ref.as<float>();
    kernels::launch_gemv(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    const std::string tag = "gate head W=" + std::to_string(W) + " groups=" + std::to_string(c.groups) + " N=" +
                            std::to_string(c.N) + (c.raw ? " raw" : " wide");
    EXPECT_EQ(y_head.download<float>(y0.size()), y_ref.download<float>(y0.size())) << tag;
    EXPECT_EQ(o.download<float>(size_t(W)), o_seen) << tag << ": o changed";
  }
}

// Heads (add + norm, gate) the GEMV cannot run are refused in one line naming the head before anything is launched.
TEST(GemvKernel, HeadRefusals) {
  alignas(16) static float buf[4096];
  kernels::GemvParams p;
  p.x = buf + 2048, p.w = reinterpret_cast<const uint16_t*>(buf), p.y = buf + 1024, p.M = 1, p.N = 1032, p.K = 16;
  p.head.h_in = buf, p.head.d = buf + 16, p.head.h_out = buf + 32, p.head.w = buf + 48, p.head.y = buf + 2048;
  p.head.dim = 16;
  const kernels::GemvParams ok = p;
  auto refused = [](const kernels::GemvParams& q, const char* what) {
    try {
      kernels::launch_gemv(q, nullptr);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("head"), std::string::npos) << what << ": " << e.what();
      return;
    }
    ADD_FAILURE() << what << ": not refused";
  };
  p.M = 2, refused(p, "two rows");
  p = ok, p.head.dim = 24, refused(p, "dim != K");
  p = ok, p.head.h_out = buf, refused(p, "h_out == h_in");
  p = ok, p.x = buf + 64, refused(p, "x is not the head's y");
  p = ok, p.head.h_out = nullptr, refused(p, "d without h_out");
  p = ok, p.N = 1024, refused(p, "the block-per-row path");
  p = ok, p.w = nullptr, p.w_f32 = buf, refused(p, "fp32 weights");
  p = ok, p.head.d = buf + 17, refused(p, "misaligned d");
  p = ok, p.tail.counter = reinterpret_cast<unsigned*>(buf + 3000), p.tail.norm.h = buf + 3008;
  p.tail.norm.w = buf + 3008, p.tail.norm.y = buf + 3008, p.tail.norm.dim = 1032;
  refused(p, "a head and a tail");
  p = ok, p.head = {}, p.x = buf + 1024, p.K = 1024;  // gate heads
  p.gate_head.o = buf + 1024, p.gate_head.w = buf, p.gate_head.gate = buf + 2048, p.gate_head.width = 1024;
  p.gate_head.groups = 4;
  const kernels::GemvParams gok = p;
  p.gate_head.groups = 3, refused(p, "groups not dividing the width");
  p = gok, p.gate_head.width = 8192, p.K = 8192, refused(p, "wider than kGateHeadMaxWidth");
  p = gok, p.x = buf, refused(p, "x is not the gate head's o");
  p = gok, p.head = ok.head, p.head.y = buf + 1024, p.head.dim = 1024, refused(p, "two heads");
  p = gok, p.gate_head.gate = buf + 2049, refused(p, "misaligned gate");
}

TEST(GemvKernel, RefusesUnsupportedShapes) {
  alignas(16) static float buf[64];
  kernels::GemvParams p;
  p.x = buf, p.w_f32 = buf, p.y = buf, p.M = 17, p.N = 2, p.K = 8;
  EXPECT_THROW(kernels::launch_gemv(p, nullptr), Error);
  p.M = 1, p.K = 12;
  EXPECT_THROW(kernels::launch_gemv(p, nullptr), Error);
  p.K = 8, p.x = buf + 1;
  EXPECT_THROW(kernels::launch_gemv(p, nullptr), Error);
  p.x = buf, p.w_f32 = nullptr;
  EXPECT_THROW(kernels::launch_gemv(p, nullptr), Error);
  p.w_f32 = buf, p.ldx = 10;
  EXPECT_THROW(kernels::launch_gemv(p, nullptr), Error);
}

}  // namespace
}  // namespace ling::test
