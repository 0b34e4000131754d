// Perplexity and KLD: window plans, a uniform model's PPL = vocabulary size and bits/byte = log2(V) with a
// byte tokenizer, KLD of a model against itself = 0 with 100% top-1, against another seed > 0, and a
// hand-computed two-token case.
#include <gtest/gtest.h>

#include <cmath>

#include "fakes.h"
#include "ling/core/error.h"
#include "ling/eval/perplexity.h"

using namespace ling::eval;
using ling::eval::test::BigramModel;
using ling::eval::test::FakeTokenizer;

namespace {
class UniformModel : public LogitsSource {
 public:
  explicit UniformModel(int v) : v_(v) {}
  int vocab_size() const override { return v_; }
  int64_t max_positions() const override { return 0; }
  void reset() override {}
  void append(std::span<const int32_t> t, bool all, std::vector<float>& l) override {
    l.assign(size_t(all ? t.size() : 1) * size_t(v_), 0.25f);
  }
  int v_;
};

std::vector<WindowResult> run(LogitsSource& m, LogitsSource* ref, const TokenizerLike& tok, const std::string& text,
                              PplOptions o) {
  auto ids = tok.encode(text);
  std::vector<WindowResult> out;
  for (const auto& w : plan_windows(int64_t(ids.size()), o, tok.bos().has_value()))
    out.push_back(score_window(m, ref, tok, ids, w, o.block));
  return out;
}

double stat(const std::vector<Stat>& s, const std::string& name) {
  for (const auto& x : s)
    if (x.name == name) return x.value;
  ADD_FAILURE() << "no stat " << name;
  return NAN;
}
}  // namespace

TEST(Windows, DisjointAndSliding) {
  PplOptions o;
  o.n_ctx = 5;
  auto w = plan_windows(10, o, true);  // capacity 4 with BOS
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].begin, 0); EXPECT_EQ(w[0].end, 4); EXPECT_EQ(w[0].first_scored, 0);
  EXPECT_EQ(w[2].begin, 8); EXPECT_EQ(w[2].end, 10); EXPECT_EQ(w[2].first_scored, 8);
  w = plan_windows(10, o, false);      // capacity 5, first token unscored
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].first_scored, 1);
  EXPECT_EQ(w[1].first_scored, 5);
  o.stride = 2;
  w = plan_windows(10, o, true);       // HF sliding: targets are the not-yet-scored tail
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].begin, 0); EXPECT_EQ(w[0].end, 4); EXPECT_EQ(w[0].first_scored, 0);
  EXPECT_EQ(w[1].begin, 2); EXPECT_EQ(w[1].end, 6); EXPECT_EQ(w[1].first_scored, 4);
  EXPECT_EQ(w[3].begin, 6); EXPECT_EQ(w[3].end, 10); EXPECT_EQ(w[3].first_scored, 8);
  o.stride = 9;
  EXPECT_THROW(plan_windows(10, o, true), ling::Error);
  o.stride = 0;
  o.n_ctx = 2;
  EXPECT_THROW(plan_windows(10, o, true), ling::Error);
}

TEST(Perplexity, UniformModelGivesVocabularySize) {
  FakeTokenizer tok;
  UniformModel m(tok.vocab());
  PplOptions o;
  o.n_ctx = 64;
  std::string text = std::string(default_text().substr(0, 1000));
  for (int64_t stride : {0, 16}) {
    o.stride = stride;
    auto s = summarize_ppl(run(m, nullptr, tok, text, o));
    EXPECT_NEAR(stat(s, "ppl"), 259.0, 1e-3);
    EXPECT_EQ(stat(s, "n_tokens"), 1000);                   // BOS: every byte scored exactly once
    EXPECT_EQ(stat(s, "n_bytes"), 1000);
    EXPECT_NEAR(stat(s, "bits_per_byte"), std::log2(259.0), 1e-5);
  }
  FakeTokenizer no_bos(false, false);
  auto s = summarize_ppl(run(m, nullptr, no_bos, text, o));
  EXPECT_EQ(stat(s, "n_tokens"), 999);                      // first token has no context
}

TEST(Kld, SelfIsZeroOtherIsLarge) {
  FakeTokenizer tok;
  BigramModel a(tok.vocab(), 1), a2(tok.vocab(), 1), b(tok.vocab(), 2);
  PplOptions o;
  o.n_ctx = 128;
  o.block = 7;  // odd block: lock-step across block edges
  std::string text = std::string(default_text().substr(0, 2000));
  auto self = summarize_kld(run(a, &a2, tok, text, o));
  EXPECT_EQ(stat(self, "kld_mean"), 0.0);
  EXPECT_EQ(stat(self, "kld_max"), 0.0);
  EXPECT_EQ(stat(self, "same_top_pct"), 100.0);
  EXPECT_EQ(stat(self, "ppl_ratio"), 1.0);
  EXPECT_EQ(stat(self, "dp_rms"), 0.0);
  auto other = summarize_kld(run(b, &a, tok, text, o));
  EXPECT_GT(stat(other, "kld_mean"), 0.3);
  EXPECT_LT(stat(other, "same_top_pct"), 10.0);
  EXPECT_LE(stat(other, "kld_median"), stat(other, "kld_p90"));
  EXPECT_LE(stat(other, "kld_p90"), stat(other, "kld_p99"));
  EXPECT_LE(stat(other, "kld_p99"), stat(other, "kld_max"));
  auto hist = kld_histogram(run(b, &a, tok, text, o));
  double total = 0;
  for (auto& [bin, f] : hist) total += f;
  EXPECT_NEAR(total, 1.0, 1e-12);
}

namespace {
// Two-token vocabulary with fixed logits: P = softmax(0, 0) = (1/2, 1/2), Q = softmax(0, ln 3) = (1/4, 3/4).
class Fixed : public LogitsSource {
 public:
  Fixed(float l1) : l1_(l1) {}
  int vocab_size() const override { return 2; }
  int64_t max_positions() const override { return 0; }
  void reset() override {}
  void append(std::span<const int32_t> t, bool all, std::vector<float>& l) override {
    l.clear();
    for (size_t i = 0; i < (all ? t.size() : 1); ++i) l.push_back(0), l.push_back(l1_);
  }
  float l1_;
};
class TwoTok : public TokenizerLike {
 public:
  std::vector<int32_t> encode(const std::string& s) const override {
    std::vector<int32_t> v;
    for (char c : s) v.push_back(c == 'b');
    return v;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t i : ids) s += i ? 'b' : 'a';
    return s;
  }
  std::optional<int32_t> bos() const override { return std::nullopt; }
  std::vector<int32_t> eos() const override { return {}; }
};
}  // namespace

TEST(Kld, HandComputed) {
  TwoTok tok;
  Fixed p(0.0f), q(static_cast<float>(std::log(3.0)));
  PplOptions o;
  o.n_ctx = 8;
  auto w = run(q, &p, tok, "abab", o);  // targets b, a, b
  auto s = summarize_kld(w);
  const double kl = 0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75);
  EXPECT_NEAR(stat(s, "kld_mean"), kl, 1e-7);
  EXPECT_EQ(stat(s, "same_top_pct"), 0.0);  // argmax P = 0 (tie, lowest id), argmax Q = 1
  // Targets b, a, b: dp = (0.75-0.5), (0.25-0.5), (0.75-0.5)
  EXPECT_NEAR(stat(s, "dp_mean"), (0.25 - 0.25 + 0.25) / 3, 1e-6);
  const double nll_q = -(std::log(0.75) * 2 + std::log(0.25)) / 3, nll_p = std::log(2.0);
  EXPECT_NEAR(stat(s, "ppl"), std::exp(nll_q), 1e-5);
  EXPECT_NEAR(stat(s, "ppl_ref"), 2.0, 1e-5);
  EXPECT_NEAR(stat(s, "ppl_ratio"), std::exp(nll_q - nll_p), 1e-5);
}

TEST(Kld, Percentile) {
  EXPECT_DOUBLE_EQ(percentile({3, 1, 2}, 0.5), 2);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 1.0), 4);
  EXPECT_DOUBLE_EQ(percentile({5}, 0.9), 5);
}
