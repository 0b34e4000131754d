// Engine::prefill in pieces (EngineOptions::prefill_chunk): a prompt fed as several forward calls, each
// continuing the caches of the previous ones, gives the logits of the prompt fed whole (every row with
// all_logits, the last row otherwise) and the same decode steps afterwards, on the committed trained models
// (GQA; Lightning + MLA hybrid). Bad ids anywhere in a long prompt are rejected before any piece runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/golden_io.h"
#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/engine/engine.h"

namespace ling::test {
namespace {

std::string model_dir(const std::string& name) { return std::string(LING_SOURCE_DIR) + "/models/" + name; }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

class PrefillChunks : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefillChunks, PiecesEqualWholePrompt) {
  auto engine = Engine::open(model_dir(GetParam()));
  const std::vector<int32_t> prompt = input_ids(*SafetensorsFile::open(model_dir(GetParam()) + "/parity.safetensors"));
  ASSERT_GE(prompt.size(), 40u);
  for (bool all : {true, false}) {
    engine->set_prefill_chunk(0);
    auto whole = engine->new_sequence();
    const std::vector<float> ref = engine->prefill(*whole, prompt, all);
    const std::vector<float> ref_step = engine->decode({whole.get()}, {prompt[3]});
    for (int64_t chunk : {1, 7, 16}) {
      engine->set_prefill_chunk(chunk);
      EXPECT_EQ(engine->prefill_chunk(), chunk);
      auto seq = engine->new_sequence();
      const std::vector<float> got = engine->prefill(*seq, prompt, all);
      EXPECT_EQ(seq->length(), int64_t(prompt.size()));
      // The pieces see the same keys in the same order; only the summation order of tiled kernels may differ.
      EXPECT_LT(max_abs_diff(got, ref), 1e-4) << "chunk " << chunk << " all_logits " << all;
      const std::vector<float> step = engine->decode({seq.get()}, {prompt[3]});
      EXPECT_LT(max_abs_diff(step, ref_step), 1e-4) << "chunk " << chunk;
    }
  }
}

TEST_P(PrefillChunks, BadIdInALaterPieceLeavesTheSequenceUntouched) {
  auto engine = Engine::open(model_dir(GetParam()));
  engine->set_prefill_chunk(4);
  std::vector<int32_t> prompt(12, 1);
  prompt[9] = int32_t(engine->config().vocab_size);  // in the third piece
  auto seq = engine->new_sequence();
  EXPECT_THROW(engine->prefill(*seq, prompt), Error);
  EXPECT_EQ(seq->length(), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, PrefillChunks, ::testing::Values("ling20-gqa-6m", "ling25-hybrid-6m"),
                         [](const auto& info) { return std::string(info.param == "ling20-gqa-6m" ? "gqa" : "hybrid"); });

}  // namespace
}  // namespace ling::test
