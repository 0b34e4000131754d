// Continuous batching (lib/engine batcher.h) on the CPU backend with the committed trained models: requests of
// different prompt lengths and budgets, admitted three at a time with chunked prefill, produce the same tokens
// as generate() alone (greedy and seeded sampling), stop on stop ids, keep at most max_batch in flight, and
// reject bad requests with one clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/golden_io.h"
#include "common/shell.h"
#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/engine/batcher.h"
#include "ling/engine/generate.h"

namespace ling::test {
namespace {

std::string model_dir(const std::string& name) { return std::string(LING_SOURCE_DIR) + "/models/" + name; }

std::vector<int32_t> parity_ids(const std::string& name) {
  return input_ids(*SafetensorsFile::open(model_dir(name) + "/parity.safetensors"));
}

class Batcher : public ::testing::TestWithParam<std::string> {};

TEST_P(Batcher, MatchesGenerateAloneWithChunkedPrefillAndRefills) {
  auto engine = Engine::open(model_dir(GetParam()));
  const std::vector<int32_t> base = parity_ids(GetParam());
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{5, 8}, {40, 3}, {1, 12}, {23, 5}, {48, 6}, {9, 10}, {17, 4}};
  std::vector<BatchRequest> reqs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    BatchRequest r;
    for (int64_t t = 0; t < shapes[i].first; ++t) r.prompt.push_back(base[size_t((t + int64_t(i) * 7) % int64_t(base.size()))]);
    r.options.max_new_tokens = shapes[i].second;
    if (i == 5) {  // one seeded sampled request
      r.options.temperature = 0.8f;
      r.options.top_k = 20;
      r.options.seed = 99;
    }
    reqs.push_back(r);
  }
  BatcherOptions bo;
  bo.max_batch = 3;
  bo.prefill_chunk = 16;
  ContinuousBatcher b(*engine, bo);
  for (const auto& r : reqs) b.submit(r);
  int64_t streamed = 0;
  const std::vector<BatchResult> res = b.run([&](int64_t, int64_t) { ++streamed; });
  ASSERT_EQ(res.size(), reqs.size());
  int64_t total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const GenerateResult alone = generate(*engine, reqs[i].prompt, reqs[i].options);
    EXPECT_EQ(res[i].id, int64_t(i));
    EXPECT_EQ(res[i].ids, alone.decode_ids) << "request " << i;
    EXPECT_FALSE(res[i].stopped);
    EXPECT_GE(res[i].finish_step, res[i].first_token_step);
    total += int64_t(res[i].ids.size());
  }
  EXPECT_EQ(streamed, total);
  EXPECT_EQ(b.stats().generated_tokens, total);
  EXPECT_EQ(b.stats().max_in_flight, 3);
  int64_t prompt_total = 0;
  for (const auto& r : reqs) prompt_total += int64_t(r.prompt.size());
  EXPECT_EQ(b.stats().prompt_tokens, prompt_total);
  EXPECT_LT(b.stats().steps, prompt_total + total);  // fewer forward calls than one per token
}

TEST_P(Batcher, StopsOnStopIdAndRejectsBadRequests) {
  auto engine = Engine::open(model_dir(GetParam()));
  const std::vector<int32_t> base = parity_ids(GetParam());
  BatchRequest r;
  r.prompt.assign(base.begin(), base.begin() + 12);
  r.options.max_new_tokens = 10;
  const GenerateResult alone = generate(*engine, r.prompt, r.options);
  ASSERT_GE(alone.decode_ids.size(), 3u);
  r.options.stop_ids = {alone.decode_ids[2]};
  size_t first = 0;
  while (alone.decode_ids[first] != alone.decode_ids[2]) ++first;  // the stop id may appear earlier
  ContinuousBatcher b(*engine, BatcherOptions{});
  b.submit(r);
  const auto res = b.run();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_TRUE(res[0].stopped);
  EXPECT_EQ(res[0].ids, std::vector<int64_t>(alone.decode_ids.begin(), alone.decode_ids.begin() + int64_t(first) + 1));

  BatchRequest empty;
  EXPECT_THROW(b.submit(empty), Error);
  BatchRequest bad;
  bad.prompt = {1, 2, int32_t(engine->config().vocab_size)};
  EXPECT_THROW(b.submit(bad), Error);
  BatchRequest longr;
  longr.prompt = {1};
  longr.options.max_new_tokens = engine->config().max_position_embeddings;
  EXPECT_THROW(b.submit(longr), Error);
  EXPECT_TRUE(b.idle());
}

TEST(BatcherCli, RunPromptsPrintsOneJsonLinePerRequest) {
  const std::string file = (std::filesystem::temp_directory_path() / ("ling_prompts_" + std::to_string(::getpid()))).string();
  { std::ofstream(file) << "In the beginning God\n\nAnd the earth was\nAnd God said , Let there be light\n"; }
  const auto r = sh(std::string(LING_BINARY) + " --no-db run " + model_dir("ling20-gqa-6m") + " --prompts " + file +
                    " --max-new-tokens 6 --max-batch 2 --prefill-chunk 4 --ignore-eos");
  std::filesystem::remove(file);
  ASSERT_EQ(r.rc, 0) << r.text;
  std::istringstream in(r.text);
  std::string line;
  std::vector<int64_t> ids;
  while (std::getline(in, line)) {
    if (line.rfind("{", 0) != 0) {  // the throughput line (stderr)
      EXPECT_NE(line.find("3 requests"), std::string::npos) << line;
      continue;
    }
    const auto j = nlohmann::json::parse(line);
    ids.push_back(j["id"].get<int64_t>());
    EXPECT_EQ(j["ids"].size(), 6u) << line;
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 2}));  // the empty line is not a request
}

INSTANTIATE_TEST_SUITE_P(Models, Batcher, ::testing::Values("ling20-gqa-6m", "ling25-hybrid-6m"),
                         [](const auto& info) { return std::string(info.param == "ling20-gqa-6m" ? "gqa" : "hybrid"); });

}  // namespace
}  // namespace ling::test
