// What ling_eval needs from a model, as two small interfaces: a tokenizer (text <-> ids) and a causal
// logits source (append tokens to one sequence, read the logits rows). The engine adapter implements them in
// tools/ling/cmd_eval.cpp; tests implement them with fakes. Greedy generation is built on top (greedy.cpp).
// Limits: one sequence at a time per LogitsSource; batching, where the engine offers it, lives in the adapter.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ling::eval {

class TokenizerLike {
 public:
  virtual ~TokenizerLike() = default;
  // Plain text -> ids, no special tokens added.
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // ids -> text (special tokens rendered as their content).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The BOS id prepended to every prompt / perplexity window, if the model uses one.
  virtual std::optional<int32_t> bos() const = 0;
  // End-of-sequence ids that stop generation.
  virtual std::vector<int32_t> eos() const = 0;
};

class LogitsSource {
 public:
  virtual ~LogitsSource() = default;
  virtual int vocab_size() const = 0;
  // Largest sequence length the source accepts (0 = unknown / unlimited).
  virtual int64_t max_positions() const = 0;
  // Forget the current sequence; the next append starts at position 0.
  virtual void reset() = 0;
  // Append tokens at the end of the current sequence. With all_rows, logits receives [tokens.size(), vocab]
  // row-major; otherwise only the row of the last appended token ([1, vocab]).
  virtual void append(std::span<const int32_t> tokens, bool all_rows, std::vector<float>& logits) = 0;
};

struct GenerateOptions {
  int max_new_tokens = 64;
  std::vector<std::string> stop;  // stop when the decoded output contains one of these (it is cut there)
};

struct Generation {
  std::vector<int32_t> ids;       // generated ids (without the stop token / cut)
  std::string text;               // decoded output, cut at the first stop string
  double prefill_ms = 0;
  double decode_ms = 0;
};

// Several independent sequences ("slots") advanced together: the batched form the engine offers.
class BatchedLogits {
 public:
  virtual ~BatchedLogits() = default;
  virtual int vocab_size() const = 0;
  virtual int64_t max_positions() const = 0;
  virtual int max_batch() const = 0;  // slots open at once
  virtual int open_slot() = 0;        // a fresh empty sequence
  virtual void close_slot(int slot) = 0;
  // Append tokens[i] to slots[i] in one call; last_rows receives the last row of each: [slots.size(), vocab].
  virtual void append(const std::vector<int>& slots, const std::vector<std::vector<int32_t>>& tokens,
                      std::vector<float>& last_rows) = 0;
};

// One LogitsSource seen as a BatchedLogits with a single slot.
class SingleSlot : public BatchedLogits {
 public:
  explicit SingleSlot(LogitsSource& src) : src_(src) {}
  int vocab_size() const override { return src_.vocab_size(); }
  int64_t max_positions() const override { return src_.max_positions(); }
  int max_batch() const override { return 1; }
  int open_slot() override;
  void close_slot(int slot) override;
  void append(const std::vector<int>& slots, const std::vector<std::vector<int32_t>>& tokens,
              std::vector<float>& last_rows) override;

 private:
  LogitsSource& src_;
  bool open_ = false;
};

// Greedy continuation of several prompts at once (prefill one by one, decode together). Per prompt the
// result equals generate_greedy's. prefill_ms is per prompt; decode_ms is the batch's decode wall time.
std::vector<Generation> generate_greedy_batch(BatchedLogits& model, const TokenizerLike& tok,
                                              const std::vector<std::vector<int32_t>>& prompts,
                                              const std::vector<GenerateOptions>& opts);

// Greedy (argmax, lowest id on ties) continuation of prompt; resets the source first.
Generation generate_greedy(LogitsSource& model, const TokenizerLike& tok, std::span<const int32_t> prompt,
                           const GenerateOptions& opt);

}  // namespace ling::eval
