// tensor_schema against the fixtures' official-code checkpoints: same names, same shapes, nothing extra.
#include <gtest/gtest.h>

#include <map>

#include "ling/core/safetensors.h"
#include "ling/model/config.h"
#include "ling/model/schema.h"

namespace ling {
namespace {

void expect_schema_matches(const std::string& dir) {
  ModelConfig c = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  std::map<std::string, std::vector<int64_t>> want;
  for (const auto& s : tensor_schema(c)) want[s.name] = s.shape;
  for (const auto& name : ck.names()) {
    auto it = want.find(name);
    ASSERT_NE(it, want.end()) << "unexpected tensor " << name;
    EXPECT_EQ(ck.get(name).shape, it->second) << name;
    want.erase(it);
  }
  EXPECT_TRUE(want.empty()) << want.size() << " schema tensors missing, first " << want.begin()->first;
}

TEST(SchemaFixtures, Ling25Tiny) { expect_schema_matches(LING_SHARED_DIR "/fixtures/ling25-tiny"); }
TEST(SchemaFixtures, Ling20Tiny) { expect_schema_matches(LING_SHARED_DIR "/fixtures/ling20-tiny"); }

TEST(SchemaFixtures, Ling25TinyLayerTable) {
  ModelConfig c = load_config(LING_SHARED_DIR "/fixtures/ling25-tiny");
  ASSERT_EQ(c.layers.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(c.layers[size_t(i)].attn, (i == 3 || i == 7) ? AttnKind::MLA : AttnKind::Lightning) << i;
    EXPECT_EQ(c.layers[size_t(i)].ffn, i == 0 ? FfnKind::Dense : FfnKind::MoE) << i;
  }
  EXPECT_TRUE(c.defaulted_keys.empty());
}

}  // namespace
}  // namespace ling
