// Continuous batching on an Engine: requests join and leave between forward calls. Every step is one
// Engine::forward over the running sequences: each decoding sequence feeds its last token, and admitted
// requests feed the next chunk of their prompt (chunked prefill, at most `prefill_chunk` prompt tokens per step
// in total), so a long prompt never stalls the others. A request finishes after max_new_tokens tokens or on a
// stop id; its slot is refilled from the queue at the next step. Picks follow generate() (greedy at temperature
// 0, else seeded sampling per request), so a request's tokens equal generate()'s decode_ids for the same
// options up to the floating-point differences of batched GEMMs. Works on every backend.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "ling/engine/engine.h"
#include "ling/engine/generate.h"

namespace ling {

struct BatcherOptions {
  int64_t max_batch = 16;       // sequences in flight
  int64_t prefill_chunk = 512;  // prompt tokens fed per step over all prefilling sequences
};

struct BatchRequest {
  std::vector<int32_t> prompt;
  GenerateOptions options;      // max_new_tokens, temperature, top_k, top_p, seed, stop_ids
};

struct BatchResult {
  int64_t id = 0;
  std::vector<int64_t> ids;     // generated tokens
  bool stopped = false;         // ended on a stop id (else on max_new_tokens)
  int64_t first_token_step = 0, finish_step = 0;  // step counters (latency in steps)
  double first_token_seconds = 0, finish_seconds = 0;  // since the request was submitted
};

struct BatcherStats {
  int64_t steps = 0, prompt_tokens = 0, generated_tokens = 0, max_in_flight = 0;
  double seconds = 0;
};

class ContinuousBatcher {
 public:
  ContinuousBatcher(Engine& engine, const BatcherOptions& options);
  ~ContinuousBatcher();
  int64_t submit(BatchRequest request);  // returns the request id (0, 1, ...); checks the prompt
  bool idle() const;
  // One forward call; on_token(id, token) for every token picked in it, on_done for every request it finished.
  void step(const std::function<void(int64_t, int64_t)>& on_token = {},
            const std::function<void(const BatchResult&)>& on_done = {});
  // Steps until every submitted request is done; results in submission order.
  std::vector<BatchResult> run(const std::function<void(int64_t, int64_t)>& on_token = {});
  const BatcherStats& stats() const { return stats_; }

 private:
  struct Slot;
  Engine& engine_;
  BatcherOptions opt_;
  std::deque<std::unique_ptr<Slot>> queue_;
  std::vector<std::unique_ptr<Slot>> running_;
  std::vector<BatchResult> done_;
  int64_t next_id_ = 0;
  BatcherStats stats_;
};

}  // namespace ling
