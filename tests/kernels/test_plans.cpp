// Host planning of the kernels (pure functions, no device needed): the Lightning prefill's sequence blocks and
// the MLA decode's context splits, checked against the rules stated in the kernel headers — one wave of two CTAs
// per SM for the prefill output pass, no empty block, and the fullest-last-wave split plan for MLA.
#include <gtest/gtest.h>

#include "ling/kernels/lightning.h"
#include "ling/kernels/mla_decode.h"

namespace ling::test {
namespace {

TEST(KernelPlans, LightningPrefillBlocks) {
  // 2 · 132 slots: 64 heads → 4 blocks, one TP8 shard → 33 requested, 512 chunks / 16 per block → 32 blocks.
  EXPECT_EQ(kernels::lightning_prefill_blocks(32768, 64, 0, 132), 4);
  EXPECT_EQ(kernels::lightning_prefill_blocks(32768, 8, 0, 132), 32);
  EXPECT_EQ(kernels::lightning_prefill_blocks(4099, 8, 0, 132), 33);  // 65 chunks, 2 per block
  EXPECT_EQ(kernels::lightning_prefill_blocks(64, 1, 0, 132), 1);     // one chunk
  EXPECT_EQ(kernels::lightning_prefill_blocks(1, 64, 0, 132), 1);
  EXPECT_EQ(kernels::lightning_prefill_blocks(1009, 2, 7, 132), 6);   // 16 chunks in blocks of 3: no empty block
  EXPECT_EQ(kernels::lightning_prefill_blocks(1000, 2, 100, 132), 16);  // at most one block per chunk
  EXPECT_EQ(kernels::lightning_prefill_workspace_bytes(64, 4, 0, 132), 0u);
  // nb > 1: at least the nb start states of every head
  EXPECT_GE(kernels::lightning_prefill_workspace_bytes(32768, 64, 0, 132), size_t(64) * 4 * 128 * 128 * 4);
}

TEST(KernelPlans, MlaDecodeSplits) {
  // tensor cores, 64 heads per CTA, one CTA per SM: B 64 → 2 splits (128 of 132 SMs); B 32 → 4.
  EXPECT_EQ(kernels::mla_decode_splits(64, 64, 32768, 0, 132, true), 2);
  EXPECT_EQ(kernels::mla_decode_splits(32, 64, 16384, 0, 132, true), 4);
  // 8 heads: 16-row CTAs, two per SM (264 slots): B 64 → 4.
  EXPECT_EQ(kernels::mla_decode_splits(64, 8, 32768, 0, 132, true), 4);
  EXPECT_EQ(kernels::mla_decode_splits(1, 1, 10, 0, 132, false), 1);  // one page
  EXPECT_EQ(kernels::mla_decode_splits(3, 3, 300, 5, 132, false), 5);   // 5 pages, requested 5
  EXPECT_EQ(kernels::mla_decode_splits(3, 3, 300, 100, 132, false), 5);  // at most one split per page
  EXPECT_EQ(kernels::mla_decode_workspace_bytes(2, 4, 100, 2, 132, true), size_t(2 * 2 * 4) * (512 + 2) * 4);
}

}  // namespace
}  // namespace ling::test
