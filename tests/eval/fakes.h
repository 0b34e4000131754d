// Test doubles for ling_eval: a byte tokenizer (id = byte + 3, BOS 1, EOS 2; optionally two bytes per token),
// a seeded bigram "model" whose logits depend on the previous token only, a uniform model, and a scripted
// model that answers each known prompt (by hash) with a fixed text.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "ling/eval/model_io.h"
#include "ling/eval/util.h"

namespace ling::eval::test {

// pair = false: one token per byte (vocab 259). pair = true: ids 259.. for two-byte pairs of lowercase
// letters, bytes otherwise (a tokenizer whose count differs from the byte count).
class FakeTokenizer : public TokenizerLike {
 public:
  explicit FakeTokenizer(bool pair = false, bool bos = true) : pair_(pair), bos_(bos) {}
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size(); ++i) {
      unsigned char a = static_cast<unsigned char>(text[i]);
      if (pair_ && i + 1 < text.size() && a >= 'a' && a <= 'z' && text[i + 1] >= 'a' && text[i + 1] <= 'z') {
        ids.push_back(259 + (a - 'a') * 26 + (text[i + 1] - 'a'));
        ++i;
      } else {
        ids.push_back(a + 3);
      }
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids) {
      if (id >= 259) s += static_cast<char>('a' + (id - 259) / 26), s += static_cast<char>('a' + (id - 259) % 26);
      else if (id >= 3) s += static_cast<char>(id - 3);
    }
    return s;
  }
  std::optional<int32_t> bos() const override { return bos_ ? std::optional<int32_t>(1) : std::nullopt; }
  std::vector<int32_t> eos() const override { return {2}; }
  int vocab() const { return pair_ ? 259 + 26 * 26 : 259; }

 private:
  bool pair_, bos_;
};

// logits[v] = scale * (uniform(hash(seed, prev, v)) - 0.5)
class BigramModel : public LogitsSource {
 public:
  BigramModel(int vocab, uint64_t seed, float scale = 4.0f) : vocab_(vocab), seed_(seed), scale_(scale) {}
  int vocab_size() const override { return vocab_; }
  int64_t max_positions() const override { return 0; }
  void reset() override { prev_ = -1; }
  void append(std::span<const int32_t> tokens, bool all_rows, std::vector<float>& logits) override {
    logits.clear();
    for (size_t i = 0; i < tokens.size(); ++i) {
      prev_ = tokens[i];
      if (!all_rows && i + 1 < tokens.size()) continue;
      Rng r = Rng::derive(seed_, "bigram", static_cast<uint64_t>(prev_));
      for (int v = 0; v < vocab_; ++v) logits.push_back(scale_ * static_cast<float>(r.uniform() - 0.5));
    }
  }

 private:
  int vocab_;
  uint64_t seed_;
  float scale_;
  int32_t prev_ = -1;
};

// Answers prompts it knows (by sha256 of the ids) with a scripted text, then EOS; unknown prompts get EOS.
class ScriptedModel : public LogitsSource {
 public:
  ScriptedModel(const FakeTokenizer& tok) : tok_(tok) {}
  void learn(const std::vector<int32_t>& prompt, const std::string& answer) { script_[sha256_ids(prompt)] = answer; }
  int vocab_size() const override { return tok_.vocab(); }
  int64_t max_positions() const override { return 0; }
  void reset() override { seq_.clear(); out_.clear(); pos_ = 0; }
  void append(std::span<const int32_t> tokens, bool all_rows, std::vector<float>& logits) override {
    if (seq_.empty()) {
      seq_.assign(tokens.begin(), tokens.end());
      auto it = script_.find(sha256_ids(seq_));
      out_ = it == script_.end() ? std::vector<int32_t>{} : tok_.encode(it->second);
    } else {
      seq_.insert(seq_.end(), tokens.begin(), tokens.end());
    }
    ++calls_;
    logits.assign(size_t(vocab_size()), 0.0f);
    int32_t next = pos_ < out_.size() ? out_[pos_] : 2;
    ++pos_;
    logits[size_t(next)] = 10.0f;
  }
  int64_t calls_ = 0;

 private:
  const FakeTokenizer& tok_;
  std::map<std::string, std::string> script_;
  std::vector<int32_t> seq_, out_;
  size_t pos_ = 0;
};

}  // namespace ling::eval::test

namespace ling::eval::test {

// BigramModel with independent slots (the batched form).
class BatchedBigram : public BatchedLogits {
 public:
  BatchedBigram(int vocab, uint64_t seed, int max_batch) : model_(vocab, seed), max_batch_(max_batch) {}
  int vocab_size() const override { return model_.vocab_size(); }
  int64_t max_positions() const override { return 0; }
  int max_batch() const override { return max_batch_; }
  int open_slot() override {
    prev_.push_back(-1);
    ++open_;
    return int(prev_.size()) - 1;
  }
  void close_slot(int) override { --open_; }
  void append(const std::vector<int>& slots, const std::vector<std::vector<int32_t>>& tokens,
              std::vector<float>& rows) override {
    rows.clear();
    ++calls_;
    std::vector<float> one;
    for (size_t i = 0; i < slots.size(); ++i) {
      model_.reset();
      model_.append(tokens[i], false, one);  // the bigram row depends on the last token only
      rows.insert(rows.end(), one.begin(), one.end());
    }
  }
  int open_ = 0;
  int64_t calls_ = 0;

 private:
  BigramModel model_;
  int max_batch_;
  std::vector<int32_t> prev_;
};

}  // namespace ling::eval::test
