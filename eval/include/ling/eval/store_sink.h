// The results store behind ResultSink (runner.h), and the model provenance row (eval.md §8.2): config.json
// sha256 and text, tokenizer.json sha256, weights digest = sha256 over the sorted "relpath\0file-sha256\n" lines
// of every *.safetensors / *.index.json file in the folder.
#pragma once
#include <functional>
#include <string>

#include "ling/eval/runner.h"
#include "ling/store/store.h"

namespace ling::eval {

class StoreSink : public ResultSink {
 public:
  StoreSink(Store& store, std::string run_id) : store_(store), run_id_(std::move(run_id)) {}
  void begin_task(const TaskInfo& task) override;
  std::vector<SampleRecord> stored_samples() override;
  void put_sample(const SampleRecord& s) override;
  void put_metric(const MetricRecord& m) override;
  int64_t task_id() const { return task_id_; }
  // Called after each task is registered (e.g. to record task names in the run's settings right away).
  std::function<void(const TaskInfo&, int64_t task_id)> on_begin;

 private:
  Store& store_;
  std::string run_id_;
  int64_t task_id_ = -1;
};

// Reads and hashes the model folder (every weight file is read once).
ModelRecord describe_model(const std::string& model_dir);

}  // namespace ling::eval
