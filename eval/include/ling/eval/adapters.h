// Adapters from ling's real components to the ling_eval interfaces (model_io.h): the model folder's
// tokenizer.json (+ stop ids from generation_config.json / tokenizer_config.json, BOS only when
// tokenizer_config.json says add_bos_token) as a TokenizerLike.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ling/eval/model_io.h"
#include "ling/tokenizer/tokenizer.h"

namespace ling::eval {

class ModelTokenizer : public TokenizerLike {
 public:
  // `model_dir`: a model folder holding tokenizer.json.
  explicit ModelTokenizer(const std::string& model_dir);
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::optional<int32_t> bos() const override { return bos_; }
  std::vector<int32_t> eos() const override { return eos_; }
  const Tokenizer& tokenizer() const { return tok_; }
  const std::string& path() const { return path_; }  // the tokenizer.json read

 private:
  Tokenizer tok_;
  std::string path_;
  std::optional<int32_t> bos_;
  std::vector<int32_t> eos_;
  std::vector<bool> known_;  // ids the tokenizer can decode
};

}  // namespace ling::eval

namespace ling::eval {

// The engine behind LogitsSource for one model folder. backend: "cpu" | "cuda". max_positions bounds the
// KV/state cache it allocates (prompt + generated tokens). device() names what it runs on.
class EngineModel : public LogitsSource, public BatchedLogits {
 public:
  int vocab_size() const override = 0;
  int64_t max_positions() const override = 0;
  virtual std::string device() const = 0;
};
// tp/ep > 1: the model spread over ranks (ling/engine/tensor_parallel.h).
std::unique_ptr<EngineModel> open_engine_model(const std::string& model_dir, const std::string& backend,
                                               int64_t max_positions, int64_t tp = 1, int64_t ep = 1);

}  // namespace ling::eval
