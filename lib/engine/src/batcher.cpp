// Continuous batching over Engine::forward (batcher.h).
#include "ling/engine/batcher.h"

#include <algorithm>
#include <chrono>

#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

struct ContinuousBatcher::Slot {
  BatchRequest req;
  BatchResult res;
  std::unique_ptr<Sequence> seq;
  int64_t fed = 0;        // prompt tokens fed so far
  int64_t next = -1;      // token to feed next once the prompt is in (−1: none yet)
  uint64_t rng = 0;
  Clock::time_point submitted;
};

ContinuousBatcher::ContinuousBatcher(Engine& engine, const BatcherOptions& options) : engine_(engine), opt_(options) {
  LING_CHECK(opt_.max_batch >= 1, "batcher: max_batch must be at least 1");
  LING_CHECK(opt_.prefill_chunk >= 1, "batcher: prefill_chunk must be at least 1");
}

ContinuousBatcher::~ContinuousBatcher() = default;

int64_t ContinuousBatcher::submit(BatchRequest request) {
  LING_CHECK(!request.prompt.empty(), "batcher: request ", next_id_, " has an empty prompt");
  LING_CHECK(request.options.max_new_tokens >= 1, "batcher: request ", next_id_, " asks for no new tokens");
  const int64_t limit = engine_.config().max_position_embeddings;
  LING_CHECK(int64_t(request.prompt.size()) + request.options.max_new_tokens <= limit, "batcher: request ",
             next_id_, ": prompt ", request.prompt.size(), " + ", request.options.max_new_tokens,
             " new tokens exceeds max_position_embeddings ", limit);
  for (int32_t id : request.prompt)
    LING_CHECK(id >= 0 && id < engine_.config().vocab_size, "batcher: request ", next_id_, ": token id ", id,
               " outside the vocabulary of ", engine_.config().vocab_size);
  auto s = std::make_unique<Slot>();
  s->res.id = next_id_++;
  s->rng = request.options.seed;
  s->req = std::move(request);
  s->submitted = Clock::now();
  queue_.push_back(std::move(s));
  return queue_.back()->res.id;
}

bool ContinuousBatcher::idle() const { return queue_.empty() && running_.empty(); }

void ContinuousBatcher::step(const std::function<void(int64_t, int64_t)>& on_token,
                             const std::function<void(const BatchResult&)>& on_done) {
  const auto t0 = Clock::now();
  while (int64_t(running_.size()) < opt_.max_batch && !queue_.empty()) {
    running_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    running_.back()->seq = engine_.new_sequence();
  }
  if (running_.empty()) return;
  stats_.max_in_flight = std::max<int64_t>(stats_.max_in_flight, int64_t(running_.size()));
  // Decoding sequences feed one token; prefilling ones share the prompt budget in admission order.
  std::vector<Sequence*> seqs;
  std::vector<std::vector<int32_t>> feeds;
  std::vector<Slot*> fed_slots;
  int64_t budget = opt_.prefill_chunk;
  for (auto& s : running_) {
    const int64_t left = int64_t(s->req.prompt.size()) - s->fed;
    if (left > 0) {
      if (budget <= 0) continue;
      const int64_t n = std::min(left, budget);
      budget -= n;
      feeds.emplace_back(s->req.prompt.begin() + s->fed, s->req.prompt.begin() + s->fed + n);
      s->fed += n;
      stats_.prompt_tokens += n;
    } else {
      feeds.push_back({int32_t(s->next)});
    }
    seqs.push_back(s->seq.get());
    fed_slots.push_back(s.get());
  }
  // Tokens are picked where the logits are (on the device for CUDA); a prompt still being fed picks nothing.
  std::vector<Engine::Choice> choices(fed_slots.size());
  for (size_t i = 0; i < fed_slots.size(); ++i) {
    Slot& s = *fed_slots[i];
    if (s.fed < int64_t(s.req.prompt.size())) continue;
    choices[i] = {s.req.options.temperature, s.req.options.top_k, s.req.options.top_p, &s.rng};
  }
  const std::vector<int64_t> picked = engine_.forward_pick(seqs, feeds, choices);
  ++stats_.steps;
  for (size_t i = 0; i < fed_slots.size(); ++i) {
    Slot& s = *fed_slots[i];
    if (s.fed < int64_t(s.req.prompt.size())) continue;  // prompt not complete: no pick yet
    s.next = picked[i];
    if (s.res.ids.empty()) {
      s.res.first_token_step = stats_.steps;
      s.res.first_token_seconds = since(s.submitted);
    }
    s.res.ids.push_back(s.next);
    ++stats_.generated_tokens;
    if (on_token) on_token(s.res.id, s.next);
    for (int64_t stop : s.req.options.stop_ids) s.res.stopped = s.res.stopped || stop == s.next;
  }
  // Retire finished requests (their caches go with the Sequence).
  for (auto it = running_.begin(); it != running_.end();) {
    Slot& s = **it;
    if (s.res.stopped || int64_t(s.res.ids.size()) >= s.req.options.max_new_tokens) {
      s.res.finish_step = stats_.steps;
      s.res.finish_seconds = since(s.submitted);
      if (on_done) on_done(s.res);
      done_.push_back(std::move(s.res));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.seconds += since(t0);
}

std::vector<BatchResult> ContinuousBatcher::run(const std::function<void(int64_t, int64_t)>& on_token) {
  while (!idle()) step(on_token);
  std::vector<BatchResult> out = std::move(done_);
  done_.clear();
  std::sort(out.begin(), out.end(), [](const BatchResult& a, const BatchResult& b) { return a.id < b.id; });
  return out;
}

}  // namespace ling
