// MoE prefill (kernels/moe/moe_prefill.*, moe_prefill.h) vs a host reference from lib/ref, both GEMM paths
// (grouped kernels, per-expert cuBLASLt), every element by the bf16 rule of house-style.md §4 (rtol 2e-2, atol
// 1e-3, cosine 1e-5), in two stages: the device's bf16 SwiGLU activations vs ref::linear (gate_up, fp32, on
// bf16(x) and the bf16 weights) → ref::swiglu; the output vs ref::linear (down) of the device's activations and
// the weighted slot sum in double. Routing: k distinct experts per token, one expert never picked, experts
// e % 7 == 3 not held (null pointers). The permutation (counts, offsets, perm, row_of_slot) is checked bitwise
// against a stable host sort, and a second run must give bitwise the same output. Shapes: n 1; n 7 with k 2 and
// H, I not multiples of the tiles; primes; several row tiles per expert; Ling-2.0-mini-like (H 2048, I 512,
// E 256, k 8, n 300); Ling-2.5 cut (H 8192, I 2048, E 16, k 8, n 64); accumulate on and off. Without a CUDA
// device only the parameter refusals run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernel_test_util.h"
#include "ling/kernels/fill.h"
#include "ling/kernels/moe_prefill.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

using kernels::MoeGemmPath;

struct Case {
  int64_t n, k, E, H, I;
  bool accumulate;
  uint64_t seed;
};

bool held(int64_t e) { return e % 7 != 3; }

// Expert weights generated on the device (bf16, gate ≈ up ≈ N(0, 1)-sized outputs) and their host values.
struct Weights {
  DeviceBuffer gu, dn, tab;  // tab: [gate_up 0..E−1, down 0..E−1] device pointers
  std::vector<float> hgu, hdn;
  std::vector<const uint16_t*> host_gu, host_dn;
  Weights(const Case& c)
      : gu(size_t(c.E * 2 * c.I * c.H) * 2), dn(size_t(c.E * c.H * c.I) * 2), tab(size_t(2 * c.E) * 8) {
    const float ag = 3.0f / std::sqrt(float(c.H)), ad = 2.7f / std::sqrt(float(c.I));
    kernels::launch_fill_uniform_bf16(gu.as<uint16_t>(), c.E * 2 * c.I * c.H, -ag, ag, c.seed + 10, nullptr);
    kernels::launch_fill_uniform_bf16(dn.as<uint16_t>(), c.E * c.H * c.I, -ad, ad, c.seed + 11, nullptr);
    hgu = from_bf16(gu.download<uint16_t>(size_t(c.E * 2 * c.I * c.H)));
    hdn = from_bf16(dn.download<uint16_t>(size_t(c.E * c.H * c.I)));
    std::vector<const uint16_t*> t(size_t(2 * c.E), nullptr);
    for (int64_t e = 0; e < c.E; ++e)
      if (held(e)) {
        t[size_t(e)] = gu.as<uint16_t>() + e * 2 * c.I * c.H;
        t[size_t(c.E + e)] = dn.as<uint16_t>() + e * c.H * c.I;
      }
    tab.upload(t);
    host_gu.assign(t.begin(), t.begin() + c.E);
    host_dn.assign(t.begin() + c.E, t.end());
  }
};

// k distinct experts per token out of [0, E) without expert `never` (E > k), weights in [0.05, 1].
void make_routing(const Case& c, int64_t never, std::vector<int32_t>& ids, std::vector<float>& w) {
  std::mt19937_64 rng(c.seed + 3);
  ids.assign(size_t(c.n * c.k), 0);
  w = uniform(size_t(c.n * c.k), 0.05f, 1.0f, c.seed + 4);
  std::vector<int32_t> pool;
  for (int64_t e = 0; e < c.E; ++e)
    if (e != never) pool.push_back(int32_t(e));
  for (int64_t t = 0; t < c.n; ++t) {
    std::shuffle(pool.begin(), pool.end(), rng);
    std::copy(pool.begin(), pool.begin() + c.k, ids.begin() + t * c.k);
  }
}

void run_case(const Case& c, MoeGemmPath path, kernels::MoePrefill& runner) {
  const int64_t n = c.n, k = c.k, E = c.E, H = c.H, I = c.I, nk = n * k;
  Weights wt(c);
  std::vector<int32_t> ids;
  std::vector<float> w;
  make_routing(c, E > k ? 1 : -1, ids, w);
  std::vector<float> x = uniform(size_t(n * H), -1, 1, c.seed + 5), out0 = uniform(size_t(n * H), -1, 1, c.seed + 6);
  const kernels::MoePrefillLayout lay = kernels::moe_prefill_layout(n, k, E, H, I);
  ASSERT_EQ(lay.total, kernels::moe_prefill_workspace_bytes(n, k, E, H, I));
  DeviceBuffer dx(x.size() * 4), di(ids.size() * 4), dw(w.size() * 4), dout(out0.size() * 4), ws(lay.total);
  dx.upload(x), di.upload(ids), dw.upload(w), dout.upload(out0);

  kernels::MoePrefillParams p;
  p.x = dx.as<float>(), p.topk_ids = di.as<int32_t>(), p.topk_weights = dw.as<float>();
  p.gate_up_dev = wt.tab.as<const uint16_t*>(), p.down_dev = wt.tab.as<const uint16_t*>() + E;
  p.gate_up_host = wt.host_gu.data(), p.down_host = wt.host_dn.data();
  p.out = dout.as<float>(), p.workspace = ws.ptr;
  p.n = n, p.k = k, p.E = E, p.H = H, p.I = I, p.accumulate = c.accumulate, p.path = path;
  runner.run(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const std::vector<float> got = dout.download<float>(out0.size());

  const std::string tag = "n=" + std::to_string(n) + " k=" + std::to_string(k) + " E=" + std::to_string(E) +
                          " H=" + std::to_string(H) + " I=" + std::to_string(I) + (c.accumulate ? " accumulate" : "") +
                          (path == MoeGemmPath::PerExpert ? " per-expert cuBLASLt" : " grouped");

  // Permutation, bitwise: stable by expert then slot; not-held experts count 0 and their slots have no row.
  std::vector<int32_t> counts(size_t(E), 0), offsets(size_t(E + 1), 0), perm, row_of_slot(size_t(nk), -1);
  for (int64_t e = 0; e < E; ++e) {
    offsets[size_t(e)] = int32_t(perm.size());
    if (!held(e)) continue;
    for (int64_t s = 0; s < nk; ++s)
      if (ids[size_t(s)] == e) row_of_slot[size_t(s)] = int32_t(perm.size()), perm.push_back(int32_t(s));
    counts[size_t(e)] = int32_t(perm.size()) - offsets[size_t(e)];
  }
  offsets[size_t(E)] = int32_t(perm.size());
  auto region = [&](size_t off, size_t count) {
    std::vector<int32_t> v(count);
    EXPECT_EQ(cudaMemcpy(v.data(), static_cast<char*>(ws.ptr) + off, count * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  };
  EXPECT_EQ(region(lay.counts, size_t(E)), counts) << tag;
  EXPECT_EQ(region(lay.offsets, size_t(E + 1)), offsets) << tag;
  EXPECT_EQ(region(lay.perm, perm.size()), perm) << tag;
  EXPECT_EQ(region(lay.row_of_slot, size_t(nk)), row_of_slot) << tag;

  // Reference in two stages, expert by expert on the stable rows. (1) act = SwiGLU of ref::linear on bf16(x),
  // unrounded, vs the device's bf16 act; (2) out from the device's act (the exact bf16 operands the down GEMM
  // used) through ref::linear and the weighted slot sum. One end-to-end comparison would judge the device by
  // the fp32 summation noise of the reference's gate_up flipping bf16 roundings of act (one act ulp × a down
  // weight, above the absolute tolerance near zero), not by the kernels.
  std::vector<float> xr = x;
  to_bf16(xr);
  const int64_t rows = int64_t(perm.size());
  const std::vector<float> act = from_bf16([&] {
    std::vector<uint16_t> v(size_t(rows * I));
    EXPECT_EQ(cudaMemcpy(v.data(), static_cast<char*>(ws.ptr) + lay.act, v.size() * 2, cudaMemcpyDeviceToHost),
              cudaSuccess);
    return v;
  }());
  std::vector<float> act_ref(size_t(rows * I)), y(size_t(rows * H));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t m = counts[size_t(e)], off = offsets[size_t(e)];
    if (m == 0) continue;
    std::vector<float> xe(size_t(m * H)), gu(size_t(m * 2 * I));
    for (int64_t r = 0; r < m; ++r)
      std::copy_n(xr.begin() + (perm[size_t(off + r)] / k) * H, H, xe.begin() + r * H);
    ref::LinearParams l;
    l.x = xe.data(), l.w = wt.hgu.data() + e * 2 * I * H, l.y = gu.data(), l.M = m, l.N = 2 * I, l.K = H;
    ref::linear(l);
    ref::SwigluParams sw;
    sw.gu = gu.data(), sw.out = act_ref.data() + off * I, sw.rows = m, sw.I = I;
    ref::swiglu(sw);
    ref::LinearParams d;
    d.x = act.data() + off * I, d.w = wt.hdn.data() + e * H * I, d.y = y.data() + off * H, d.M = m, d.N = H, d.K = I;
    ref::linear(d);
  }
  EXPECT_TRUE(close_bf16("moe prefill act " + tag, act, act_ref));
  std::vector<float> want(size_t(n * H));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h) {
      double acc = c.accumulate ? double(out0[size_t(t * H + h)]) : 0.0;
      for (int64_t s = 0; s < k; ++s) {
        const int32_t r = row_of_slot[size_t(t * k + s)];
        if (r >= 0) acc += double(w[size_t(t * k + s)]) * double(y[size_t(r) * H + h]);
      }
      want[size_t(t * H + h)] = float(acc);
    }
  EXPECT_TRUE(close_bf16("moe prefill out " + tag, got, want));

  // Deterministic: the same call again gives the same bits.
  dout.upload(out0);
  runner.run(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const std::vector<float> again = dout.download<float>(out0.size());
  EXPECT_EQ(std::memcmp(again.data(), got.data(), got.size() * 4), 0) << tag << ": second run differs";
}

void run_both(const Case& c) {
  kernels::MoePrefill runner(2);
  run_case(c, MoeGemmPath::Grouped, runner);
  run_case(c, MoeGemmPath::PerExpert, runner);
}

TEST(MoePrefill, SmallAndOddShapes) {
  SKIP_WITHOUT_CUDA();
  run_both({1, 4, 8, 128, 64, false, 10});   // one token
  run_both({7, 2, 5, 72, 40, true, 20});     // n 7, k 2; H, I not multiples of the tiles
  run_both({13, 3, 11, 200, 104, false, 30});  // primes
  run_both({131, 5, 17, 136, 88, true, 40});
  run_both({300, 8, 16, 256, 128, false, 50});  // ~150 rows per expert: several row tiles
}

TEST(MoePrefill, Ling20MiniDims) {
  SKIP_WITHOUT_CUDA();
  run_both({300, 8, 256, 2048, 512, true, 60});
}

TEST(MoePrefill, Ling25DimsCut) {
  SKIP_WITHOUT_CUDA();
  run_both({64, 8, 16, 8192, 2048, false, 70});
}

TEST(MoePrefill, RefusesBadShapes) {
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(4, 0, 8, 128, 64), Error);       // k 0
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(4, 33, 64, 128, 64), Error);     // k > 32
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(4, 2, 8, 130, 64), Error);       // H not a multiple of 8
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(4, 2, 8, 128, 60), Error);       // I not a multiple of 8
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(4, 2, 5000, 128, 64), Error);    // E too large
  EXPECT_THROW(kernels::moe_prefill_workspace_bytes(int64_t(1) << 29, 8, 8, 128, 64), Error);  // n·k ≥ 2^31
  EXPECT_GT(kernels::moe_prefill_workspace_bytes(0, 8, 8, 128, 64), size_t(0));
}

TEST(MoePrefill, RefusesNullPointers) {
  SKIP_WITHOUT_CUDA();
  kernels::MoePrefill runner(0);
  kernels::MoePrefillParams p;
  p.n = 4, p.k = 2, p.E = 8, p.H = 128, p.I = 64;
  EXPECT_THROW(runner.run(p, nullptr), Error);
  DeviceBuffer b(4096);
  p.x = b.as<float>(), p.topk_ids = b.as<int32_t>(), p.topk_weights = b.as<float>(), p.out = b.as<float>();
  p.workspace = b.ptr, p.gate_up_dev = b.as<const uint16_t*>(), p.down_dev = b.as<const uint16_t*>();
  p.path = MoeGemmPath::PerExpert;  // no lanes in this runner
  EXPECT_THROW(runner.run(p, nullptr), Error);
}

}  // namespace
}  // namespace ling::test
