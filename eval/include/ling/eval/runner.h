// Running tasks through a model and recording what happened. The results store is reached through
// ResultSink (the adapter over lib/store lives in tools/ling/cmd_eval.cpp; tests use an in-memory sink), so
// the same code resumes a run: samples already stored are skipped and metrics are always recomputed from
// the full set of stored + new samples, which makes a resumed run end with the same metrics.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ling/eval/perplexity.h"
#include "ling/eval/tasks.h"

namespace ling::eval {

struct SampleRecord {
  int64_t idx = 0;
  uint64_t seed = 0;
  int64_t context_tokens = 0;
  double depth_pct = -1;
  std::string prompt_sha256;
  std::string prompt_text;      // decoded prompt ("" when not kept)
  std::string target_json;      // JSON array of reference strings
  std::string output_text;
  std::vector<int32_t> output_ids;
  int64_t n_prompt_tokens = 0;
  int64_t n_gen_tokens = 0;
  double score = 0;
  bool correct = false;
  double prefill_ms = 0;
  double decode_ms = 0;
  std::string extra_json = "{}";
};

struct MetricRecord {
  std::string name;
  std::string bucket;           // "" (task level), "ctx=4096", "ctx=4096,depth=50", "bin=[0,1e-4)"
  double value = 0;
  double stderr_ = -1;          // -1: none
  int64_t n = 0;
  bool higher_is_better = true;
  std::string aggregation = "mean";
  std::string filter;           // gsm8k: "strict-match" / "flexible-extract"
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void begin_task(const TaskInfo& task) = 0;               // register; following calls refer to it
  virtual std::vector<SampleRecord> stored_samples() = 0;          // of the current task in this run
  virtual void put_sample(const SampleRecord& s) = 0;              // one transaction per sample
  virtual void put_metric(const MetricRecord& m) = 0;
};

// Keeps everything in memory (ling eval --no-db, tests).
class MemorySink : public ResultSink {
 public:
  void begin_task(const TaskInfo& task) override;
  std::vector<SampleRecord> stored_samples() override;
  void put_sample(const SampleRecord& s) override;
  void put_metric(const MetricRecord& m) override;
  struct Entry {
    TaskInfo task;
    std::vector<SampleRecord> samples;
    std::vector<MetricRecord> metrics;
  };
  std::vector<Entry> entries;
};

// Human-readable metric table: task, metric, bucket, value (± stderr), n.
std::string format_metrics(const std::string& task, const std::vector<MetricRecord>& metrics);

struct RunOptions {
  bool keep_prompt_text = false;  // store decoded prompts (large for long contexts)
  bool progress = true;           // progress bar on stderr when it is a terminal
  int batch = 8;                  // samples generated together (capped by the model's max_batch)
};

// Generation task: every sample not yet stored is generated greedily, scored and stored; returns the metrics
// (also stored).
std::vector<MetricRecord> run_task(const Task& task, const TokenizerLike& tok, BatchedLogits& model,
                                   ResultSink& sink, const RunOptions& opt);
std::vector<MetricRecord> run_task(const Task& task, const TokenizerLike& tok, LogitsSource& model,
                                   ResultSink& sink, const RunOptions& opt);

// Metrics of a generation task from its samples: per task, per context, per (context, depth).
std::vector<MetricRecord> task_metrics(const TaskInfo& info, const std::vector<SampleRecord>& samples);

// Perplexity (ref == nullptr) or KLD over text. Windows are samples (per-token values in extra_json).
TaskInfo text_task_info(bool kld, const std::string& text, const std::string& text_name, const PplOptions& opt,
                        bool has_bos);
std::vector<MetricRecord> run_text_task(const TaskInfo& info, const std::string& text, const TokenizerLike& tok,
                                        LogitsSource& model, LogitsSource* ref, const PplOptions& opt,
                                        ResultSink& sink, const RunOptions& run);

}  // namespace ling::eval
