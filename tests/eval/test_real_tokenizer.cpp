// Task generators with the real ling::Tokenizer (through ModelTokenizer): a small byte-level BPE
// tokenizer.json written here (256 byte tokens + a few merges) gives prompts of exactly the requested length,
// identical for the same seed, and perplexity over the built-in text scores every token once.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fakes.h"
#include "ling/eval/adapters.h"
#include "ling/eval/perplexity.h"
#include "ling/eval/tasks.h"
#include "ling/eval/util.h"

using namespace ling::eval;

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  else s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  return s;
}

// GPT-2 byte -> printable code point map.
std::vector<std::string> byte_map() {
  std::vector<std::string> m(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool same = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    m[b] = utf8(same ? b : next++);
  }
  return m;
}

std::string make_model_dir() {
  std::string dir = ::testing::TempDir() + "/eval_tok_model";
  std::filesystem::create_directories(dir);
  auto bm = byte_map();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bm[size_t(b)]] = b;
  std::vector<std::pair<std::string, std::string>> merges = {{bm[' '], "t"}, {"h", "e"}, {bm[' '] + "t", "he"},
                                                             {bm[' '], "a"}, {"n", "d"}, {bm[' '] + "a", "nd"}};
  nlohmann::json mj = nlohmann::json::array();
  int id = 256;
  for (auto& [a, b] : merges) {
    vocab[a + b] = id++;
    mj.push_back(nlohmann::json::array({a, b}));
  }
  nlohmann::json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", nlohmann::json::array({{{"id", id}, {"content", "<|endoftext|>"}, {"single_word", false},
                                               {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                                               {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                         {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"ignore_merges", false}, {"vocab", vocab}, {"merges", mj}}}};
  std::ofstream(dir + "/tokenizer.json") << tj.dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "<|endoftext|>"})";
  return dir;
}

}  // namespace

TEST(RealTokenizer, ExactLengthsAndStableHashes) {
  ModelTokenizer tok(make_model_dir());
  ASSERT_FALSE(tok.eos().empty());
  EXPECT_FALSE(tok.bos().has_value());
  auto ids = tok.encode(" the and");
  EXPECT_EQ(ids.size(), 2u);  // " the" and " and" are merged
  EXPECT_EQ(tok.decode(ids), " the and");
  TaskOptions o;
  o.contexts = {1500, 4096};
  o.depths = {0, 100};
  o.samples = 1;
  o.seed = 42;
  for (const auto& name : task_names()) {
    if (name == "gsm8k" || name == "arith") continue;
    auto a = make_task(name, o), b = make_task(name, o);
    for (int64_t i = 0; i < a->size(); ++i) {
      TaskSample s = a->make(i, tok);
      ASSERT_EQ(static_cast<int64_t>(s.prompt.size()), s.context_tokens) << name << " " << i;
      EXPECT_EQ(sha256_ids(s.prompt), sha256_ids(b->make(i, tok).prompt)) << name;
    }
  }
}

TEST(RealTokenizer, PerplexityScoresEveryTokenOnce) {
  ModelTokenizer tok(make_model_dir());
  std::string text(default_text());
  auto ids = tok.encode(text);
  ASSERT_LT(ids.size(), text.size());  // merges applied
  ling::eval::test::BigramModel m(300, 3);
  PplOptions o;
  o.n_ctx = 256;
  o.stride = 128;
  std::vector<WindowResult> ws;
  for (auto& w : plan_windows(int64_t(ids.size()), o, false)) ws.push_back(score_window(m, nullptr, tok, ids, w, 64));
  int64_t n = 0, bytes = 0;
  for (auto& w : ws) n += int64_t(w.nll.size()), bytes += w.n_bytes;
  EXPECT_EQ(n, int64_t(ids.size()) - 1);
  EXPECT_EQ(bytes, int64_t(text.size()) - int64_t(tok.decode(std::span<const int32_t>(ids.data(), 1)).size()));
}
