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
// Appends next to g (unless EOS) and applies the stop strings; true when generation is over.
bool take(Generation& g, int32_t next, const std::vector<int32_t>& eos, const TokenizerLike& tok,
          const GenerateOptions& opt) {
  for (int32_t e : eos)
    if (e == next) return true;
  g.ids.push_back(next);
  g.text = tok.decode(g.ids);
  bool stopped = false;
  for (const auto& s : opt.stop) {
    size_t at = s.empty() ? std::string::npos : g.text.find(s);
    if (at != std::string::npos) g.text.resize(at), stopped = true;
  }
  return stopped || static_cast<int>(g.ids.size()) >= opt.max_new_tokens;
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
    if (take(g, next, eos, tok, opt)) break;
    model.append(std::span<const int32_t>(&next, 1), false, logits);
  }
  g.decode_ms = ms_since(t0);
  return g;
}

int SingleSlot::open_slot() {
  LING_CHECK(!open_, "internal error: SingleSlot holds one sequence at a time");
  open_ = true;
  src_.reset();
  return 0;
}

void SingleSlot::close_slot(int) { open_ = false; }

void SingleSlot::append(const std::vector<int>& slots, const std::vector<std::vector<int32_t>>& tokens,
                        std::vector<float>& last_rows) {
  LING_CHECK(slots.size() == 1 && tokens.size() == 1 && open_, "internal error: SingleSlot takes one open slot");
  src_.append(tokens[0], false, last_rows);
}


std::vector<Generation> generate_greedy_batch(BatchedLogits& model, const TokenizerLike& tok,
                                              const std::vector<std::vector<int32_t>>& prompts,
                                              const std::vector<GenerateOptions>& opts) {
  LING_CHECK(prompts.size() == opts.size(), "generate: ", prompts.size(), " prompts but ", opts.size(), " options");
  const int v = model.vocab_size();
  const int64_t limit = model.max_positions();
  const auto eos = tok.eos();
  std::vector<Generation> out(prompts.size());
  std::vector<int> slots;
  std::vector<int32_t> next(prompts.size());
  std::vector<float> rows;
  try {
    for (size_t i = 0; i < prompts.size(); ++i) {
      LING_CHECK(!prompts[i].empty(), "generate: empty prompt");
      LING_CHECK(limit <= 0 || static_cast<int64_t>(prompts[i].size()) + opts[i].max_new_tokens <= limit,
                 "generate: prompt ", prompts[i].size(), " + ", opts[i].max_new_tokens,
                 " new tokens exceeds the model's ", limit, " positions");
      slots.push_back(model.open_slot());
      auto t0 = std::chrono::steady_clock::now();
      model.append({slots.back()}, {prompts[i]}, rows);
      out[i].prefill_ms = ms_since(t0);
      LING_CHECK(static_cast<int>(rows.size()) == v, "generate: the model returned ", rows.size(),
                 " logits, expected ", v);
      next[i] = argmax(rows.data(), v);
    }
    std::vector<size_t> active;
    for (size_t i = 0; i < prompts.size(); ++i)
      if (opts[i].max_new_tokens > 0) active.push_back(i);
    auto t0 = std::chrono::steady_clock::now();
    while (!active.empty()) {
      std::vector<size_t> still;
      for (size_t i : active)
        if (!take(out[i], next[i], eos, tok, opts[i])) still.push_back(i);
      active = still;
      if (active.empty()) break;
      std::vector<int> s;
      std::vector<std::vector<int32_t>> t;
      for (size_t i : active) s.push_back(slots[i]), t.push_back({out[i].ids.back()});
      model.append(s, t, rows);
      LING_CHECK(rows.size() == active.size() * size_t(v), "generate: the model returned ", rows.size(),
                 " logits for ", active.size(), " sequences");
      for (size_t k = 0; k < active.size(); ++k) next[active[k]] = argmax(rows.data() + k * size_t(v), v);
    }
    double decode_ms = ms_since(t0);
    for (auto& g : out) g.decode_ms = decode_ms;
  } catch (...) {
    for (int s : slots) model.close_slot(s);
    throw;
  }
  for (int s : slots) model.close_slot(s);
  return out;
}

}  // namespace ling::eval
