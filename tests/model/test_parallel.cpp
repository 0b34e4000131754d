// Per-GPU layouts (ling/model/parallel.h) on the bundled real configs: one GPU holds the whole model; over tp GPUs
// the ranks hold every parameter once plus the replicated ones tp times; caches and states split or replicate as
// the layout says; bad plans are one clear error; the memory plan picks DP attention when replicated caches no
// longer fit.
#include <gtest/gtest.h>

#include <cmath>

#include "ling/core/error.h"
#include "ling/model/accounting.h"
#include "ling/model/parallel.h"

namespace ling {
namespace {

ModelConfig bundled(const std::string& name) { return load_config(std::string(LING_SOURCE_DIR "/configs/") + name); }

TEST(Parallel, OneGpuHoldsTheWholeModel) {
  for (const char* name : {"ling-2.5-1t", "ling-mini-2.0", "ring-mini-linear-2.0"}) {
    const ModelConfig c = bundled(name);
    const RankFootprint f = rank_footprint(c, ParallelPlan{});
    EXPECT_DOUBLE_EQ(f.params, double(count_params(c).total)) << name;
    EXPECT_DOUBLE_EQ(f.kv_bytes_per_token, double(kv_cache_bytes_per_token(c))) << name;
    EXPECT_DOUBLE_EQ(f.state_bytes_per_sequence, double(linear_state_bytes_per_sequence(c))) << name;
    EXPECT_EQ(f.allreduce_bytes_per_token, 0.0);
    EXPECT_EQ(f.alltoall_bytes_per_token, 0.0);
  }
}

TEST(Parallel, RanksHoldEveryParameterOncePlusTheReplicatedOnes) {
  const ModelConfig c = bundled("ling-2.5-1t");
  const double total = double(count_params(c).total);
  for (int64_t tp : {2, 4, 8, 16}) {
    const RankFootprint f = rank_footprint(c, ParallelPlan{tp, tp, false});
    EXPECT_NEAR(double(tp) * f.params - double(tp - 1) * f.replicated_params, total, 1e-6 * total) << tp;
    // MLA latent cache replicated on every rank, Lightning states split by heads.
    EXPECT_DOUBLE_EQ(f.kv_bytes_per_token, double(kv_cache_bytes_per_token(c)));
    EXPECT_DOUBLE_EQ(f.kv_replication, double(tp));
    EXPECT_DOUBLE_EQ(f.state_bytes_per_sequence, double(linear_state_bytes_per_sequence(c)) / double(tp));
    // Ring all-reduce of H bf16 values after attention and after the FFN in every layer.
    EXPECT_DOUBLE_EQ(f.allreduce_bytes_per_token, 80.0 * 2.0 * 2.0 * double(tp - 1) / double(tp) * 8192 * 2);
  }
}

TEST(Parallel, DpAttentionStoresEachSequenceOnceAndReplicatesAttentionWeights) {
  const ModelConfig c = bundled("ling-2.5-1t");
  const RankFootprint tp = rank_footprint(c, ParallelPlan{8, 8, false});
  const RankFootprint dp = rank_footprint(c, ParallelPlan{8, 8, true});
  EXPECT_EQ(dp.ranks_per_sequence, 1);
  EXPECT_DOUBLE_EQ(dp.kv_replication, 1.0);
  EXPECT_DOUBLE_EQ(dp.state_bytes_per_sequence, double(linear_state_bytes_per_sequence(c)));
  EXPECT_GT(dp.params, tp.params);
  EXPECT_GT(dp.replicated_params, tp.replicated_params);
  // 64 sequences of 128K tokens: TP keeps all 64 on every GPU, DP keeps 8.
  const double t = rank_bytes(c, ParallelPlan{8, 8, false}, 64, 131072);
  const double d = rank_bytes(c, ParallelPlan{8, 8, true}, 64, 131072);
  EXPECT_NEAR(t - tp.params * 2, 64.0 * (131072.0 * tp.kv_bytes_per_token + tp.state_bytes_per_sequence), 1.0);
  EXPECT_NEAR(d - dp.params * 2, 8.0 * (131072.0 * dp.kv_bytes_per_token + dp.state_bytes_per_sequence), 1.0);
  std::string why;
  // A GPU big enough for DP but not for TP at this load: the plan picks DP attention.
  const ParallelPlan pick = choose_attention_mode(c, ParallelPlan{8, 8, false}, 64, 131072, (t + d) / 2, 2.0, &why);
  EXPECT_EQ(pick.dp_attention, d < t) << why;
  const ParallelPlan small = choose_attention_mode(c, ParallelPlan{8, 8, false}, 1, 4096, 1e15, 2.0, &why);
  EXPECT_FALSE(small.dp_attention) << why;
}

TEST(Parallel, GqaKvHeadsReplicateBeyondTheirCount) {
  const ModelConfig c = bundled("ling-mini-2.0");  // 4 KV heads
  const RankFootprint f4 = rank_footprint(c, ParallelPlan{4, 1, false});
  const RankFootprint f8 = rank_footprint(c, ParallelPlan{8, 1, false});
  EXPECT_DOUBLE_EQ(f4.kv_bytes_per_token, double(kv_cache_bytes_per_token(c)) / 4.0);
  EXPECT_DOUBLE_EQ(f4.kv_replication, 1.0);
  EXPECT_DOUBLE_EQ(f8.kv_bytes_per_token, double(kv_cache_bytes_per_token(c)) / 4.0);  // one KV head per rank
  EXPECT_DOUBLE_EQ(f8.kv_replication, 2.0);
  ASSERT_FALSE(f8.notes.empty());
}

TEST(Parallel, PlansThatDoNotFitAreOneError) {
  const ModelConfig c = bundled("ling-2.5-1t");
  EXPECT_THROW(check_plan(c, ParallelPlan{3, 1, false}), Error);   // 64 heads
  EXPECT_THROW(check_plan(c, ParallelPlan{8, 3, false}), Error);   // ep does not divide tp
  EXPECT_THROW(check_plan(c, ParallelPlan{0, 1, false}), Error);
  EXPECT_NO_THROW(check_plan(c, ParallelPlan{8, 4, false}));
  try {
    check_plan(c, ParallelPlan{3, 1, false});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_attention_heads 64"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ling
