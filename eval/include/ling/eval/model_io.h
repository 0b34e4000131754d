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

// Greedy (argmax, lowest id on ties) continuation of prompt; resets the source first.
Generation generate_greedy(LogitsSource& model, const TokenizerLike& tok, std::span<const int32_t> prompt,
                           const GenerateOptions& opt);

}  // namespace ling::eval
