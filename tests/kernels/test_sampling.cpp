// Token choice on the device (kernels/sampling, sampling.h) vs lib/ref: argmax_rows against ref::argmax (strided
// rows that force the scalar path and packed 16-byte-aligned rows on the vector path; ties, all-equal rows, the
// last element); sample_rows against ref::sample_with_draw with the same draws — every id equal — over greedy
// and sampled rows mixed in one call, temperatures, top_k (0, 1, 8, 100, > V), top_p (1, 0.9, 0.3, 0), vocab
// sizes 1 … 157184, rows with many ties (values on a 0.25 grid) and signed zeros (−0 ties with +0 as in the host
// comparison).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernel_test_util.h"
#include "ling/kernels/sampling.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

TEST(ArgmaxRowsKernel, MatchesRefArgmax) {
  SKIP_WITHOUT_CUDA();
  for (int64_t V : {1, 7, 1000, 157184})
    for (int64_t pad : {3, 0}) {  // ld = V + 3: scalar loads; ld = V (V % 4 == 0): 16-byte loads
      const int64_t n = 5, ld = V + pad;
      std::vector<float> x = uniform(size_t(n * ld), -8, 8, uint64_t(300 + V + pad));
      for (int64_t r = 0; r < n; ++r) {
        float* row = x.data() + r * ld;
        if (r == 1) for (int64_t i = 0; i < V; ++i) row[i] = std::round(row[i] / 8.0f);  // ties at the maximum
        if (r == 2) std::fill(row, row + V, 0.5f);                                        // all equal → 0
        if (r == 3) row[V - 1] = 100.0f;                                                   // the last element
      }
      DeviceBuffer dx(x.size() * 4), di(size_t(n) * 4);
      dx.upload(x);
      kernels::ArgmaxRowsParams p;
      p.logits = dx.as<float>(), p.ids = di.as<int32_t>(), p.n = n, p.V = V, p.ld = ld;
      kernels::launch_argmax_rows(p, nullptr);
      TEST_CUDA(cudaDeviceSynchronize());
      const auto got = di.download<int32_t>(size_t(n));
      for (int64_t r = 0; r < n; ++r)
        EXPECT_EQ(got[size_t(r)], ref::argmax(x.data() + r * ld, V)) << "V=" << V << " ld=" << ld << " row " << r;
    }
}

// One call over n rows with the given specs; every id must equal the host's pick for the same draw.
void check_sample_rows(int64_t V, const std::vector<kernels::SampleSpec>& specs, int kind, uint64_t seed) {
  const int64_t n = int64_t(specs.size()), ld = V + 1;
  std::vector<float> x = uniform(size_t(n * ld), -6, 6, seed);
  for (int64_t r = 0; r < n; ++r) {
    float* row = x.data() + r * ld;
    if (kind == 1)
      for (int64_t i = 0; i < V; ++i) row[i] = std::round(row[i] * 4.0f) / 4.0f;  // many ties
    if (kind == 2)
      for (int64_t i = 0; i < V; ++i) row[i] = i % 3 == 0 ? (i % 2 ? -0.0f : 0.0f) : row[i] - 6.0f;  // ±0 on top
  }
  DeviceBuffer dx(x.size() * 4), di(size_t(n) * 4), ws(kernels::sample_rows_workspace_bytes(n, V));
  dx.upload(x);
  kernels::SampleRowsParams p;
  p.logits = dx.as<float>(), p.specs = specs.data(), p.ids = di.as<int32_t>(), p.n = n, p.V = V, p.ld = ld;
  p.workspace = ws.as<void>();
  kernels::launch_sample_rows(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const auto got = di.download<int32_t>(size_t(n));
  for (int64_t r = 0; r < n; ++r) {
    const kernels::SampleSpec& sp = specs[size_t(r)];
    ref::SamplingParams h;
    h.logits = x.data() + r * ld, h.vocab = V, h.temperature = sp.temperature, h.top_k = sp.top_k, h.top_p = sp.top_p;
    EXPECT_EQ(got[size_t(r)], ref::sample_with_draw(h, sp.draw))
        << "V=" << V << " kind " << kind << " row " << r << " T=" << sp.temperature << " top_k=" << sp.top_k
        << " top_p=" << sp.top_p << " draw=" << sp.draw;
  }
}

TEST(SampleRowsKernel, MatchesRefSampleWithDraw) {
  SKIP_WITHOUT_CUDA();
  uint64_t rng = 77;
  int rows = 0;
  for (int64_t V : {1, 37, 1000, 4099, 157184})
    for (int kind : {0, 1, 2}) {
      std::vector<kernels::SampleSpec> specs;
      for (float T : {0.0f, 0.7f, 1.0f, 1.5f})
        for (int32_t top_k : {0, 1, 8, 100, 5000})
          for (float top_p : {1.0f, 0.9f, 0.3f, 0.0f}) {
            if (V == 157184 && (top_k == 1 || top_p == 0.3f)) continue;  // keep the largest rows few
            specs.push_back({T, top_k, top_p, ref::splitmix64(&rng)});
          }
      check_sample_rows(V, specs, kind, uint64_t(1000 + V + kind));
      rows += int(specs.size());
    }
  EXPECT_GT(rows, 1000);
}

TEST(SampleRowsKernel, GreedyOnlyNeedsNoWorkspaceAndRefusesBadSpecs) {
  SKIP_WITHOUT_CUDA();
  check_sample_rows(513, {{0.0f, 0, 1.0f, 0}, {-1.0f, 4, 0.5f, 9}}, 0, 5);
  alignas(16) static float buf[16];
  kernels::SampleSpec bad{1.0f, -1, 1.0f, 0};
  kernels::SampleRowsParams p;
  p.logits = buf, p.specs = &bad, p.ids = reinterpret_cast<int32_t*>(buf), p.n = 1, p.V = 4, p.workspace = buf;
  EXPECT_THROW(kernels::launch_sample_rows(p, nullptr), Error);
  kernels::SampleSpec ok{1.0f, 0, 1.0f, 0};
  p.specs = &ok, p.workspace = nullptr;  // a sampled row needs the workspace
  EXPECT_THROW(kernels::launch_sample_rows(p, nullptr), Error);
}

}  // namespace
}  // namespace ling::test
