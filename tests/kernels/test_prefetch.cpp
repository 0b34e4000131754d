// L2 prefetch kernel (kernels/prefetch.h): a hint with no output, so the test checks what it must never do —
// fault or touch memory — on the ranges the engine gives it: sizes that are not multiples of 16 or of a piece,
// several ranges, a device table with null entries, and ids outside the table (negative, past the end).
#include <cstdint>
#include <vector>

#include "kernel_test_util.h"
#include "ling/kernels/prefetch.h"

namespace ling::test {
namespace {

TEST(L2Prefetch, RangesAndTableLeaveMemoryUntouched) {
  SKIP_WITHOUT_CUDA();
  const size_t bytes = (size_t(3) << 20) + 4096 + 40;  // 3 MiB + not a multiple of a piece nor of 16
  std::vector<uint8_t> h(bytes);
  for (size_t i = 0; i < bytes; ++i) h[i] = uint8_t(i * 131 + 7);
  DeviceBuffer a(bytes), b(bytes);
  a.upload(h);
  b.upload(h);
  // Table: [a, null, b + 4096]; ids: 0, 1 (null), 2, −1, 3 (past the end), 2 again.
  std::vector<const void*> tab = {a.ptr, nullptr, b.as<uint8_t>() + 4096};
  DeviceBuffer dtab(sizeof(void*) * tab.size());
  dtab.upload(tab);
  std::vector<int32_t> ids = {0, 1, 2, -1, 3, 2};
  DeviceBuffer dids(sizeof(int32_t) * ids.size());
  dids.upload(ids);

  kernels::L2PrefetchParams p;
  EXPECT_TRUE(p.add(a.ptr, bytes));
  EXPECT_TRUE(p.add(b.as<uint8_t>() + 16, bytes - 16 - 5));
  EXPECT_TRUE(p.add(nullptr, 1024));             // ignored
  EXPECT_TRUE(p.add(b.as<uint8_t>() + 8, 1024));  // not 16-byte aligned: ignored
  EXPECT_EQ(p.n, 2);
  p.table = static_cast<const void* const*>(dtab.ptr);
  p.table_len = int(tab.size());
  p.ids = dids.as<int32_t>();
  p.n_ids = int(ids.size());
  p.table_bytes = bytes - 4096;
  kernels::launch_l2_prefetch(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  kernels::L2PrefetchParams empty;  // nothing to do: no launch
  kernels::launch_l2_prefetch(empty, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  for (int i = 0; i < kernels::L2PrefetchParams::kMaxRanges - 2; ++i) EXPECT_TRUE(p.add(a.ptr, 64));
  EXPECT_FALSE(p.add(a.ptr, 64));  // the list is full
  EXPECT_EQ(a.download<uint8_t>(bytes), h);
  EXPECT_EQ(b.download<uint8_t>(bytes), h);
}

}  // namespace
}  // namespace ling::test
