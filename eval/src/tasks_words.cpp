// Aggregation tasks (eval.md §1.1): common words extraction (cwe) and frequent words extraction (fwe).
// cwe: a numbered list where 10 common words appear 30 times (6 below 4K) and the others 3 times (1 below
// 4K); the number of other words is the largest that fits, then newline padding makes the count exact.
// fwe: random 6-letter coded words with Zipf(2) counts, rank 1 replaced by "...."; answer = ranks 2-4.
#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "haystack.h"
#include "ling/core/error.h"
#include "task_common.h"

namespace ling::eval::detail {
namespace {

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// Largest n in [lo, hi] with fits(n) (fits monotone, fits(lo) required).
template <typename F>
int64_t largest_fitting(int64_t lo, int64_t hi, F fits) {
  while (lo < hi) {
    int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

class CweTask : public GridTask {
 public:
  explicit CweTask(const TaskOptions& opt)
      : GridTask({"cwe", "ruler", "1", "", "", MetricKind::StringMatchAll}, opt, false, 120) {
    finish_params(nlohmann::json{{"common", 10}});
  }

  // Word pool: built-in words, then seeded pseudo-words when more are needed.
  static std::vector<std::string> pool(Rng& rng, size_t n) {
    std::vector<std::string> w = common_words();
    shuffle(w, rng);
    std::set<std::string> seen(w.begin(), w.end());
    while (w.size() < n) {
      std::string x = random_letters(rng, 5 + static_cast<int>(rng.below(4)), false);
      if (seen.insert(x).second) w.push_back(x);
    }
    return w;
  }

  static std::string list_text(const std::vector<std::string>& words) {
    std::string s;
    for (size_t i = 0; i < words.size(); ++i) s += std::to_string(i + 1) + ". " + words[i] + "\n";
    return s;
  }

  void build(const Cell& c, Rng& rng, const TokenizerLike& tok, TaskSample& s) const override {
    const bool small = c.context < 4096;
    const int64_t rep_common = small ? 6 : 30, rep_other = small ? 1 : 3;
    const std::string intro =
        "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
        "ones that appear most often.\n";
    auto question = [](int k) {
      return "Question: What are the " + std::to_string(k) + " most common words in the above list? Answer: The "
             "top " + std::to_string(k) + " words that appear most often in the list are:";
    };
    // A short worked example (3 common words).
    std::vector<std::string> ex_pool = pool(rng, 9);
    std::vector<std::string> ex;
    for (int i = 0; i < 9; ++i) for (int r = 0; r < (i < 3 ? 3 : 1); ++r) ex.push_back(ex_pool[size_t(i)]);
    shuffle(ex, rng);
    std::string example = intro + list_text(ex) + question(3);
    for (int i = 0; i < 3; ++i) example += std::string(i ? "," : "") + " " + ex_pool[size_t(i)];
    example += "\n\n" + intro;

    std::vector<int32_t> head = encode_with_bos(tok, example);
    std::vector<int32_t> tail = tok.encode(question(10));
    const int64_t budget = c.context - static_cast<int64_t>(head.size() + tail.size());
    // Upper bound on distinct other words: every list line takes at least 3 tokens ("N", ". ", word).
    const int64_t max_other = std::max<int64_t>(0, budget / (3 * rep_other));
    std::vector<std::string> words = pool(rng, static_cast<size_t>(10 + max_other));
    std::unordered_map<std::string, size_t> len_cache;
    auto assemble = [&](int64_t n_other, Rng r) {
      std::vector<std::string> list;
      for (int64_t i = 0; i < 10 + n_other; ++i)
        for (int64_t k = 0; k < (i < 10 ? rep_common : rep_other); ++k) list.push_back(words[size_t(i)]);
      shuffle(list, r);
      return list;
    };
    auto tokens_of = [&](const std::vector<std::string>& list) {
      std::vector<int32_t> ids;
      for (size_t i = 0; i < list.size(); ++i) {
        auto e = tok.encode(std::to_string(i + 1) + ". " + list[i] + "\n");
        ids.insert(ids.end(), e.begin(), e.end());
      }
      return ids;
    };
    Rng order = Rng::derive(s.seed, "order", 0);
    auto fits = [&](int64_t n) { return static_cast<int64_t>(tokens_of(assemble(n, order)).size()) <= budget; };
    LING_CHECK(budget > 0 && fits(0), "task cwe: context ", c.context,
               " tokens is too small for the 10 common words and the instructions");
    int64_t n_other = largest_fitting(0, max_other, fits);
    std::vector<int32_t> body = tokens_of(assemble(n_other, order));
    s.prompt = pad_to(tok, head, body, tail, c.context, info_.name);
    s.targets.assign(words.begin(), words.begin() + 10);
  }
};

class FweTask : public GridTask {
 public:
  explicit FweTask(const TaskOptions& opt)
      : GridTask({"fwe", "ruler", "1", "", "", MetricKind::StringMatchAll}, opt, false, 50) {
    finish_params(nlohmann::json{{"alpha", 2.0}});
  }

  void build(const Cell& c, Rng& rng, const TokenizerLike& tok, TaskSample& s) const override {
    const std::string intro =
        "Read the following coded text and track the frequency of each coded word. Find the three most "
        "frequently appeared coded words.\n";
    const std::string question =
        "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
        "frequently appeared words in the above coded text? Answer: According to the coded text above, the three "
        "most frequently appeared words are:";
    const int64_t vocab = std::max<int64_t>(10, c.context / 50);
    std::vector<std::string> words = {"...."};
    std::set<std::string> seen(words.begin(), words.end());
    while (static_cast<int64_t>(words.size()) < vocab) {
      std::string w = random_letters(rng, 6, false);
      if (seen.insert(w).second) words.push_back(w);
    }
    double z = 0;
    for (int64_t r = 1; r <= vocab; ++r) z += 1.0 / (double(r) * double(r));
    std::vector<int64_t> word_tokens;
    for (auto& w : words) word_tokens.push_back(static_cast<int64_t>(tok.encode(" " + w).size()));
    // count(r) = floor(n * r^-2 / z): deterministic Zipf(2) profile for a total of about n words.
    auto counts = [&](int64_t n) {
      std::vector<int64_t> k(static_cast<size_t>(vocab));
      for (int64_t r = 1; r <= vocab; ++r)
        k[size_t(r - 1)] = static_cast<int64_t>(std::floor(double(n) / (double(r) * double(r) * z)));
      return k;
    };
    std::vector<int32_t> head = encode_with_bos(tok, intro);
    std::vector<int32_t> tail = tok.encode(question);
    const int64_t budget = c.context - static_cast<int64_t>(head.size() + tail.size());
    auto cost = [&](int64_t n) {
      auto k = counts(n);
      int64_t t = 0;
      for (size_t i = 0; i < k.size(); ++i) t += k[i] * word_tokens[i];
      return t;
    };
    // Ranks 2-4 must be strictly ahead of rank 5: needs n/z * (1/16 - 1/25) >= 1.
    const int64_t min_n = static_cast<int64_t>(std::ceil(z / (1.0 / 16 - 1.0 / 25))) + 1;
    LING_CHECK(budget > 0 && cost(min_n) <= budget, "task fwe: context ", c.context,
               " tokens is too small for a Zipf word list with a clear top 3");
    int64_t n = largest_fitting(min_n, std::max(min_n, budget), [&](int64_t m) { return cost(m) <= budget; });
    auto k = counts(n);
    std::vector<int64_t> seq;
    for (size_t i = 0; i < k.size(); ++i) for (int64_t j = 0; j < k[i]; ++j) seq.push_back(int64_t(i));
    shuffle(seq, rng);
    std::vector<std::vector<int32_t>> enc(words.size());
    std::vector<int32_t> body;
    for (int64_t w : seq) {
      auto& e = enc[size_t(w)];
      if (e.empty()) e = tok.encode(" " + words[size_t(w)]);
      body.insert(body.end(), e.begin(), e.end());
    }
    s.prompt = pad_to(tok, head, body, tail, c.context, info_.name);
    s.targets = {words[1], words[2], words[3]};
  }
};

}  // namespace

std::unique_ptr<Task> make_cwe_task(const TaskOptions& opt) { return std::make_unique<CweTask>(opt); }
std::unique_ptr<Task> make_fwe_task(const TaskOptions& opt) { return std::make_unique<FweTask>(opt); }

}  // namespace ling::eval::detail
