// Shared pieces of the task generators: the grid walk (context x depth x repetition -> per-sample seed),
// key/value makers (adjective-noun words, 7-digit numbers, v4 UUIDs) and word lists. Private to ling_eval.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ling/eval/tasks.h"
#include "ling/eval/util.h"

namespace ling::eval::detail {

// A task over contexts x depths x samples. Subclasses fill prompt/targets in build().
class GridTask : public Task {
 public:
  GridTask(TaskInfo info, TaskOptions opt, bool uses_depth, int default_gen_tokens);
  const TaskInfo& info() const override { return info_; }
  int64_t size() const override;
  TaskSample make(int64_t idx, const TokenizerLike& tok) const override;

 protected:
  struct Cell {
    int64_t context;
    double depth;   // -1 when the task has no depth axis
    int64_t rep;
  };
  virtual void build(const Cell& cell, Rng& rng, const TokenizerLike& tok, TaskSample& out) const = 0;
  // Finish info_.params_json from the options plus task-specific extras.
  void finish_params(nlohmann::json extra = nlohmann::json::object());

  TaskInfo info_;
  TaskOptions opt_;
  bool uses_depth_;
  int gen_tokens_;
};

std::string random_word_key(Rng& rng);      // "adjective-noun"
std::string random_number7(Rng& rng);       // 1000000..9999999
std::string random_uuid(Rng& rng);          // v4 layout, lowercase hex
std::string random_letters(Rng& rng, int n, bool upper);
const std::vector<std::string>& common_words();  // built-in English words (dictionary order)
// Lines of prose (non-empty lines of text).
std::vector<std::string> split_lines(const std::string& text);

// The RULER repeat filler line and passkey filler.
inline const char* kRepeatFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

std::unique_ptr<Task> make_needle_task(const std::string& name, const TaskOptions& opt);
std::unique_ptr<Task> make_vt_task(const TaskOptions& opt);
std::unique_ptr<Task> make_cwe_task(const TaskOptions& opt);
std::unique_ptr<Task> make_fwe_task(const TaskOptions& opt);
std::unique_ptr<Task> make_arith_task(const TaskOptions& opt);
std::unique_ptr<Task> make_gsm8k_task(const TaskOptions& opt);

}  // namespace ling::eval::detail
