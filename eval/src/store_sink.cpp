// StoreSink and describe_model (store_sink.h).
#include "ling/eval/store_sink.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ling/core/error.h"
#include "ling/eval/util.h"

namespace ling::eval {

void StoreSink::begin_task(const TaskInfo& t) {
  TaskRecord r;
  r.name = t.name;
  r.family = t.family;
  r.generator_version = t.generator_version;
  r.params_json = t.params_json;
  r.params_sha256 = sha256_hex(t.params_json);
  r.corpus_sha256 = t.corpus_sha256;
  task_id_ = store_.upsert_task(r);
  if (on_begin) on_begin(t, task_id_);
}

std::vector<SampleRecord> StoreSink::stored_samples() {
  LING_CHECK(task_id_ >= 0, "internal error: StoreSink used before begin_task");
  std::vector<SampleRecord> out;
  for (const auto& s : store_.samples(run_id_, task_id_)) {
    SampleRecord r;
    r.idx = s.idx;
    r.seed = static_cast<uint64_t>(s.seed);
    r.context_tokens = s.context_tokens;
    r.depth_pct = s.depth_pct ? *s.depth_pct : -1;
    r.prompt_sha256 = s.prompt_sha256;
    r.prompt_text = s.prompt_text;
    r.target_json = s.target_json;
    r.output_text = s.output_text;
    r.output_ids = s.output_ids;
    r.n_prompt_tokens = s.n_prompt_tokens;
    r.n_gen_tokens = s.n_gen_tokens;
    r.score = s.score;
    r.correct = s.correct;
    r.prefill_ms = s.prefill_ms;
    r.decode_ms = s.decode_ms;
    r.extra_json = s.extra_json;
    out.push_back(std::move(r));
  }
  return out;
}

void StoreSink::put_sample(const SampleRecord& r) {
  LING_CHECK(task_id_ >= 0, "internal error: StoreSink used before begin_task");
  SampleRow s;
  s.run_id = run_id_;
  s.task_id = task_id_;
  s.idx = r.idx;
  s.seed = static_cast<int64_t>(r.seed);
  s.context_tokens = r.context_tokens;
  if (r.depth_pct >= 0) s.depth_pct = r.depth_pct;
  s.prompt_sha256 = r.prompt_sha256;
  s.prompt_text = r.prompt_text;
  s.target_json = r.target_json.empty() ? "null" : r.target_json;
  s.output_text = r.output_text;
  s.output_ids = r.output_ids;
  s.n_prompt_tokens = r.n_prompt_tokens;
  s.n_gen_tokens = r.n_gen_tokens;
  s.score = r.score;
  s.correct = r.correct;
  s.prefill_ms = r.prefill_ms;
  s.decode_ms = r.decode_ms;
  s.extra_json = r.extra_json;
  store_.add_sample(s);
}

void StoreSink::put_metric(const MetricRecord& m) {
  LING_CHECK(task_id_ >= 0, "internal error: StoreSink used before begin_task");
  MetricRow r;
  r.run_id = run_id_;
  r.task_id = task_id_;
  r.name = m.name;
  r.bucket = m.bucket;
  r.value = m.value;
  if (m.stderr_ >= 0) r.stderr_value = m.stderr_;
  r.n = m.n;
  r.higher_is_better = m.higher_is_better;
  r.aggregation = m.aggregation;
  r.filter = m.filter;
  store_.add_metric(r);
}

ModelRecord describe_model(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  LING_CHECK(fs::is_directory(dir), model_dir, ": not a model folder");
  ModelRecord m;
  m.label = fs::absolute(dir).lexically_normal().filename().string();
  if (m.label.empty()) m.label = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  std::ifstream cf(dir / "config.json", std::ios::binary);
  LING_CHECK(cf.good(), (dir / "config.json").string(), ": cannot open");
  std::stringstream ss;
  ss << cf.rdbuf();
  m.config_json = ss.str();
  m.config_sha256 = sha256_hex(m.config_json);
  try {
    auto j = nlohmann::json::parse(m.config_json);
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
      m.arch = j["architectures"][0];
    if (j.contains("model_type") && j["model_type"].is_string()) m.model_type = j["model_type"];
  } catch (const std::exception& e) {
    LING_THROW((dir / "config.json").string(), ": not valid JSON (", e.what(), ")");
  }
  if (fs::exists(dir / "tokenizer.json")) m.tokenizer_sha256 = sha256_file((dir / "tokenizer.json").string());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    bool st = name.size() > 12 && name.substr(name.size() - 12) == ".safetensors";
    bool idx = name.size() > 11 && name.substr(name.size() - 11) == ".index.json";
    if (e.is_regular_file() && (st || idx)) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  LING_CHECK(!files.empty(), model_dir, ": no *.safetensors files");
  std::string lines;
  for (const auto& f : files) lines += f + '\0' + sha256_file_cached((dir / f).string()) + "\n";
  m.weights_digest = sha256_hex(lines);
  m.dtype_summary = "";
  m.origin = "downloaded";
  return m;
}

}  // namespace ling::eval
