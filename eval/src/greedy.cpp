// Greedy generation on a LogitsSource (model_io.h): prefill the prompt (last row only), then one token at a
// time until max_new_tokens, an EOS id, or a stop string in the decoded output.
#include <chrono>

#include "ling/core/error.h"
#include "ling/eval/model_io.h"

namespace ling::eval {

namespace {
int32_t argmax(const float* row, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return best;
}
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Generation generate_greedy(LogitsSource& model, const TokenizerLike& tok, std::span<const int32_t> prompt,
                           const GenerateOptions& opt) {
  LING_CHECK(!prompt.empty(), "generate: empty prompt");
  const int64_t limit = model.max_positions();
  LING_CHECK(limit <= 0 || static_cast<int64_t>(prompt.size()) + opt.max_new_tokens <= limit, "generate: prompt ",
             prompt.size(), " + ", opt.max_new_tokens, " new tokens exceeds the model's ", limit, " positions");
  const auto eos = tok.eos();
  Generation g;
  std::vector<float> logits;
  model.reset();
  auto t0 = std::chrono::steady_clock::now();
  model.append(prompt, false, logits);
  g.prefill_ms = ms_since(t0);
  const int v = model.vocab_size();
  LING_CHECK(static_cast<int>(logits.size()) == v, "generate: the model returned ", logits.size(),
             " logits, expected ", v);
  t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < opt.max_new_tokens; ++step) {
    int32_t next = argmax(logits.data(), v);
    bool is_eos = false;
    for (int32_t e : eos) is_eos = is_eos || e == next;
    if (is_eos) break;
    g.ids.push_back(next);
    g.text = tok.decode(g.ids);
    bool stopped = false;
    for (const auto& s : opt.stop) {
      size_t at = s.empty() ? std::string::npos : g.text.find(s);
      if (at != std::string::npos) g.text.resize(at), stopped = true;
    }
    if (stopped || step + 1 == opt.max_new_tokens) break;
    model.append(std::span<const int32_t>(&next, 1), false, logits);
  }
  g.decode_ms = ms_since(t0);
  return g;
}

}  // namespace ling::eval
