// Acceptance figures of the bundled configs (architecture.md §5.1, §5.2, §5.4): exact parameter counts,
// KV cache bytes per token and Lightning state bytes per sequence, and the layer schedule.
#include <gtest/gtest.h>

#include "ling/model/accounting.h"
#include "ling/model/config.h"

namespace ling {
namespace {

ModelConfig bundled(const std::string& name) { return load_config(std::string(LING_SOURCE_DIR "/configs/") + name); }

struct Expected {
  const char* name;
  int64_t total, active, active_non_embedding, kv_bytes_per_token, state_bytes;
};

class BundledConfig : public ::testing::TestWithParam<Expected> {};

TEST_P(BundledConfig, ReproducesPublishedFigures) {
  const Expected& e = GetParam();
  ModelConfig c = bundled(e.name);
  ParamCounts p = count_params(c);
  EXPECT_EQ(p.total, e.total);
  EXPECT_EQ(p.active, e.active);
  EXPECT_EQ(p.active_non_embedding, e.active_non_embedding);
  EXPECT_EQ(kv_cache_bytes_per_token(c), e.kv_bytes_per_token);
  EXPECT_EQ(linear_state_bytes_per_sequence(c), e.state_bytes);
}

INSTANTIATE_TEST_SUITE_P(
    Section54, BundledConfig,
    ::testing::Values(
        Expected{"ling-mini-2.0", 16255643392, 1432973056, 789145344, 40960, 0},
        Expected{"ring-mini-linear-2.0", 16423448320, 1600777984, 956950272, 8192, 16777216},
        Expected{"ling-flash-2.0", 102889705216, 6152277760, 4864622336, 65536, 0},
        Expected{"ling-2.5-1t", 1012231160320, 63580258816, 61004947968, 11520, 293601280},
        Expected{"deepseek-v3", 671026419200, 37552297472, 35698932224, 70272, 0},
        Expected{"kimi-k2", 1026408232448, 32861500928, 30512683520, 70272, 0}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n) if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(Accounting, Ling25Schedule) {
  ModelConfig c = bundled("ling-2.5-1t");
  ASSERT_EQ(c.num_hidden_layers, 80);
  for (const auto& l : c.layers) {
    const bool mla = (l.index + 1) % 8 == 0;
    EXPECT_EQ(l.attn, mla ? AttnKind::MLA : AttnKind::Lightning) << l.index;
    EXPECT_EQ(l.ffn, l.index < 4 ? FfnKind::Dense : FfnKind::MoE) << l.index;
  }
  LayerCounts n = count_layers(c);
  EXPECT_EQ(n.mla, 10);
  EXPECT_EQ(n.lightning, 70);
  // 280 MiB of fp32 state, 140 MiB in bf16; fp8 halves the KV cache.
  EXPECT_EQ(linear_state_bytes_per_sequence(c), 280LL << 20);
  EXPECT_EQ(linear_state_bytes_per_sequence(c, CacheDtypes{2, 2}), 140LL << 20);
  EXPECT_EQ(kv_cache_bytes_per_token(c, CacheDtypes{1, 4}), 5760);
  // The MLA cache reaches the state at about 25.5K tokens.
  EXPECT_EQ(cache_crossover_context(c), (293601280 + 11519) / 11520);
}

TEST(Accounting, RingMiniSchedule) {
  ModelConfig c = bundled("ring-mini-linear-2.0");
  for (const auto& l : c.layers)
    EXPECT_EQ(l.attn, (l.index % 5 == 4) ? AttnKind::GQA : AttnKind::Lightning) << l.index;
}

TEST(Accounting, FlopsGrowWithContextOnlyThroughSoftmaxLayers) {
  ModelConfig c = bundled("ling-2.5-1t");
  ParamCounts p = count_params(c);
  FlopsPerToken f0 = flops_per_token(c, 0);
  // With no context the decode cost is the matmuls plus the Lightning state work.
  const double lightning = 70.0 * 4.0 * 64 * 128 * 128;
  EXPECT_DOUBLE_EQ(f0.decode, 2.0 * double(p.active_non_embedding + p.lm_head) + lightning);
  FlopsPerToken f1 = flops_per_token(c, 1000), f2 = flops_per_token(c, 2000);
  EXPECT_NEAR((f2.decode - f1.decode), (f1.decode - f0.decode), 1e-3 * f1.decode);
  EXPECT_GT(f1.decode - f0.decode, 0);
}

}  // namespace
}  // namespace ling
