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
