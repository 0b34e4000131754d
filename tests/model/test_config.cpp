// Config parsing: defaults, the HF layer rule with its tail clause, Lightning slopes and decay variants, and
// one clear error per impossible value (architecture.md §1, §2.6, §3, §7.1).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"
#include "ling/model/config.h"

namespace ling {
namespace {

nlohmann::json hybrid() {
  return {{"model_type", "bailing_hybrid"}, {"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 128},
          {"num_hidden_layers", 8}, {"num_attention_heads", 4}, {"num_key_value_heads", 4}, {"head_dim", 16},
          {"hidden_act", "silu"}, {"use_qkv_bias", false}, {"use_bias", false}, {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", false}, {"max_position_embeddings", 4096}, {"rope_theta", 10000.0},
          {"rope_scaling", nullptr}, {"partial_rotary_factor", 0.5}, {"pad_token_id", 0}, {"eos_token_id", 1},
          {"num_experts", 8}, {"num_shared_experts", 1}, {"num_experts_per_tok", 2}, {"n_group", 4},
          {"topk_group", 2}, {"moe_intermediate_size", 32}, {"first_k_dense_replace", 1}, {"use_qk_norm", true},
          {"num_nextn_predict_layers", 0}, {"moe_router_enable_expert_bias", true}, {"routed_scaling_factor", 2.5},
          {"layer_group_size", 4}, {"group_norm_size", 2}, {"linear_silu", false}, {"kv_lora_rank", 32},
          {"q_lora_rank", nullptr}, {"qk_rope_head_dim", 8}, {"qk_nope_head_dim", 16}, {"v_head_dim", 16},
          {"rope_interleave", true}};
}

ModelConfig parse(const nlohmann::json& j) { return parse_config(j.dump(), "cfg.json"); }

std::string error_of(const nlohmann::json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, AllKeysPresentNothingDefaulted) {
  ModelConfig c = parse(hybrid());
  EXPECT_TRUE(c.defaulted_keys.empty());
  EXPECT_EQ(c.family, Family::Ling25);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.rope_dim(), 8);
}

TEST(Config, AbsentKeysTakeClassDefaultsAndAreListed) {
  auto j = hybrid();
  j.erase("routed_scaling_factor");
  j.erase("group_norm_size");
  ModelConfig c = parse(j);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.group_norm_size, 4);
  EXPECT_EQ(c.defaulted_keys, (std::vector<std::string>{"routed_scaling_factor", "group_norm_size"}));
}

TEST(Config, TailClauseMakesTrailingPartialGroupSoftmax) {
  std::vector<int> softmax;
  for (int i = 0; i < 22; ++i)
    if (is_softmax_layer(i, 22, 5)) softmax.push_back(i);
  EXPECT_EQ(softmax, (std::vector<int>{4, 9, 14, 19, 20, 21}));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(is_softmax_layer(i, 3, 5));
  auto j = hybrid();
  j["num_hidden_layers"] = 10;
  ModelConfig c = parse(j);
  std::string map;
  for (const auto& l : c.layers) map += l.attn == AttnKind::MLA ? 'M' : 'L';
  EXPECT_EQ(map, "LLLMLLLMMM");
}

TEST(Config, MtpLayersFollowTheMainStackAsMla) {
  auto j = hybrid();
  j["num_nextn_predict_layers"] = 1;
  ModelConfig c = parse(j);
  ASSERT_EQ(c.layers.size(), 9u);
  EXPECT_TRUE(c.layers[8].mtp);
  EXPECT_EQ(c.layers[8].attn, AttnKind::MLA);
}

TEST(Config, SlopesFollowTheAlibiRule) {
  auto s16 = lightning_slopes(16);
  for (int h = 0; h < 16; ++h) EXPECT_NEAR(s16[size_t(h)], std::pow(2.0, -(h + 1) / 2.0), 1e-14 * s16[size_t(h)]);
  auto s64 = lightning_slopes(64);
  for (int h = 0; h < 64; ++h) EXPECT_NEAR(s64[size_t(h)], std::pow(2.0, -(h + 1) / 8.0), 1e-14 * s64[size_t(h)]);
  // Not a power of two: slopes(8) then every other slope of slopes(16), 4 of them.
  auto s12 = lightning_slopes(12), s8 = lightning_slopes(8);
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s12[size_t(h)], s8[size_t(h)]);
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(s12[size_t(8 + i)], s16[size_t(2 * i)]);
  EXPECT_EQ(lightning_slopes(48).size(), 48u);
}

TEST(Config, DecayVariants) {
  EXPECT_DOUBLE_EQ(lightning_decay_factor(DecayVariant::HF, 0, 8), 1.0 + 1.0 / 7.0 + 1e-5);
  EXPECT_DOUBLE_EQ(lightning_decay_factor(DecayVariant::Engine, 0, 8), 1.0 + 1e-5);
  EXPECT_DOUBLE_EQ(lightning_decay_factor(DecayVariant::MLX, 0, 8), 1.0 + 1e-5);
  EXPECT_DOUBLE_EQ(lightning_decay_factor(DecayVariant::MLX, 1, 8), 1.0 + 1e-5);
  EXPECT_DOUBLE_EQ(lightning_decay_factor(DecayVariant::HF, 7, 8), 1.0 - 6.0 / 7.0 + 1e-5);
  EXPECT_THROW(parse_decay_variant("vllm"), Error);
}

struct BadCase {
  const char* key;
  nlohmann::json value;
};
class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NameTheKey) {
  auto j = hybrid();
  j[GetParam().key] = GetParam().value;
  std::string msg = error_of(j);
  ASSERT_FALSE(msg.empty()) << GetParam().key << " = " << GetParam().value.dump() << " was accepted";
  EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().key), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Impossible, ConfigErrors,
    ::testing::Values(BadCase{"n_group", 0}, BadCase{"n_group", 3}, BadCase{"topk_group", 5},
                      BadCase{"num_experts_per_tok", 9}, BadCase{"partial_rotary_factor", 0.3},
                      BadCase{"hidden_act", "gelu"}, BadCase{"linear_silu", true}, BadCase{"hidden_size", "64"},
                      BadCase{"group_norm_size", 3}, BadCase{"qk_rope_head_dim", 16},
                      BadCase{"rope_interleave", false}, BadCase{"num_hidden_layers", 0}),
    [](const auto& info) { return std::string(info.param.key) + "_" + std::to_string(info.index); });

TEST(ConfigErrors, GqaHeadsMustDivide) {
  auto j = hybrid();
  j["model_type"] = "bailing_moe";
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);
}

TEST(ConfigErrors, UnknownModelType) {
  auto j = hybrid();
  j["model_type"] = "llama";
  EXPECT_NE(error_of(j).find("unsupported model_type 'llama'"), std::string::npos);
}

TEST(ConfigErrors, InvalidJsonNamesFileAndByte) {
  try {
    parse_config("{\"vocab_size\": 12,,}", "bad.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: invalid JSON at byte"), std::string::npos) << e.what();
  }
}

TEST(ConfigErrors, MissingFile) {
  EXPECT_THROW(load_config("/nonexistent/folder"), Error);
}

}  // namespace
}  // namespace ling
