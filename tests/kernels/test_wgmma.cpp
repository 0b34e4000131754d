// The wgmma helpers (kernels/common/wgmma.cuh) against host products: the SS form with both operands K-major and
// the RS form with a transposed (MN-major) B in shared memory, in the no-swizzle layout the Hopper kernels use.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernel_test_util.h"
#include "ling/kernels/wgmma_selftest.h"

namespace ling::test {
namespace {

TEST(Wgmma, DescriptorLayouts) {
  SKIP_WITHOUT_CUDA();
  constexpr int K = 32, N = 128;
  auto ra = uniform(64 * K, -1.0f, 1.0f, 7), rb = uniform(64 * K, -1.0f, 1.0f, 8), rbt = uniform(K * N, -1.0f, 1.0f, 9);
  const auto ha = to_bf16(ra), hb = to_bf16(rb), hbt = to_bf16(rbt);  // ra, rb, rbt now hold the bf16 values
  DeviceBuffer da(ha.size() * 2), db(hb.size() * 2), dbt(hbt.size() * 2), dss(64 * 64 * 4), drs(64 * N * 4);
  da.upload(ha), db.upload(hb), dbt.upload(hbt);
  kernels::wgmma_selftest(da.as<uint16_t>(), db.as<uint16_t>(), dbt.as<uint16_t>(), dss.as<float>(), drs.as<float>(),
                          nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const auto ss = dss.download<float>(64 * 64), rs = drs.download<float>(64 * N);
  int bad_ss = 0, bad_rs = 0;
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < 64; ++n) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(ra[m * K + k]) * rb[n * K + k];
      bad_ss += std::fabs(ss[m * 64 + n] - ref) > 1e-5 * (1 + std::fabs(ref));
    }
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < N; ++n) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(ra[m * K + k]) * rbt[k * N + n];
      bad_rs += std::fabs(rs[m * N + n] - ref) > 1e-5 * (1 + std::fabs(ref));
    }
  std::printf("wgmma self-test: SS K-major %d/%d wrong; RS with MN-major B %d/%d wrong\n", bad_ss, 64 * 64, bad_rs, 64 * N);
  EXPECT_EQ(bad_ss, 0);
  EXPECT_EQ(bad_rs, 0);
}

}  // namespace
}  // namespace ling::test
