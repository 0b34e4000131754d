// Offline task generators (eval.md §1-§2): passkey, RULER's synthetic families, GSM8K-style arithmetic and
// GSM8K-format JSONL. Every sample is a pure function of (task params, seed, grid cell, repetition, tokenizer):
// prompts are assembled from token ids so that a context length L gives a prompt of exactly L tokens (BOS
// included); the prompt hash is sha256 of the ids. Generation tokens come on top of L.
// Limits: English templates; the essay haystack is the given prose (default: the built-in KJV text).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ling/eval/model_io.h"

namespace ling::eval {

enum class MetricKind { PasskeyExact, StringMatchAll, StringMatchPart, Gsm8k };

struct TaskOptions {
  std::vector<int64_t> contexts = {4096};   // prompt lengths in tokens (grid tasks)
  std::vector<double> depths = {0, 50, 100}; // needle depths in percent (needle tasks)
  int64_t samples = 10;                    // repetitions per grid cell, or problems for arith/gsm8k
  uint64_t seed = 0;
  std::string data_path;                   // gsm8k: JSONL with "question" and "answer"
  int shots = 3;                           // arith/gsm8k: solved examples before the question
  int max_new_tokens = -1;                 // -1: the task's default
  std::string text;                        // prose for essay haystacks (default: built-in text)
  std::string text_name;                   // where it came from, recorded with its sha256
};

struct TaskInfo {
  std::string name;               // e.g. "niah_single_1"
  std::string family;             // passkey | ruler | arith | gsm8k
  std::string generator_version;  // bump when prompts change
  std::string params_json;        // canonical JSON of everything that shapes the prompts (seed excluded)
  std::string corpus_sha256;      // haystack prose / data file hash ("" when none)
  MetricKind metric = MetricKind::StringMatchAll;
};

struct TaskSample {
  int64_t idx = 0;                 // stable index: ((context * n_depths) + depth) * samples + rep
  uint64_t seed = 0;               // per-sample seed derived from (seed, task, context, depth, rep)
  int64_t context_tokens = 0;      // requested prompt length (0 = not fitted)
  double depth_pct = -1;           // first needle depth (-1 = none)
  std::vector<int32_t> prompt;     // token ids
  std::vector<std::string> targets;  // reference strings (gsm8k/arith: the gold number)
  int max_new_tokens = 64;
  std::vector<std::string> stop;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const TaskInfo& info() const = 0;
  virtual int64_t size() const = 0;
  virtual TaskSample make(int64_t idx, const TokenizerLike& tok) const = 0;
};

// All names make_task accepts (generation tasks; ppl and kld are handled by perplexity.h).
const std::vector<std::string>& task_names();
std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& opt);

}  // namespace ling::eval
