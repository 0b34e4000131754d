// The SQLite results database (eval.md §8): every `ling` invocation is a row in `runs`, with its build,
// device and model; evaluations add tasks, samples and metrics; benchmarks add perf rows; conversions add
// artifacts. WAL journal, a 10 s busy timeout (plus retries of BEGIN IMMEDIATE) so several processes can
// write one database at once, foreign keys on, STRICT tables, versioned migrations recorded in schema_meta.
// This is the only code that includes sqlite3.h. All methods throw ling::Error with one line naming the
// database path on failure.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace ling {

struct ModelRecord {
  std::string label;             // folder name or user label
  std::string arch, model_type;
  std::string config_sha256, config_json;
  std::string tokenizer_sha256;  // "" when the model has no tokenizer.json
  std::string weights_digest;    // sha256 over sorted (relpath, file sha256)
  int64_t n_params = 0, n_params_active = 0;
  std::string dtype_summary;     // e.g. "F32:443"
  std::string origin = "downloaded";  // generated|trained|converted|downloaded
  std::optional<int64_t> parent_model_id;
};

struct TaskRecord {
  std::string name, family, generator_version, params_json = "{}", params_sha256, corpus_sha256;
};

struct SampleRow {
  std::string run_id;
  int64_t task_id = 0, idx = 0, seed = 0, context_tokens = 0;
  std::optional<double> depth_pct;
  std::string prompt_sha256, prompt_text, target_json = "null", output_text;
  std::vector<int32_t> output_ids;
  int64_t n_prompt_tokens = 0, n_gen_tokens = 0;
  double score = 0;
  bool correct = false;
  double prefill_ms = 0, decode_ms = 0;
  std::string extra_json = "{}";
};

struct MetricRow {
  std::string run_id;
  std::optional<int64_t> task_id;  // nullopt = run-level
  std::string name, bucket;
  double value = 0;
  std::optional<double> stderr_value;
  int64_t n = 0;
  bool higher_is_better = true;
  std::string aggregation = "mean", filter;
};

struct PerfRow {
  std::string run_id, phase = "kernel", op, shape_json = "{}";
  int64_t n_tokens = 0, batch = 0, ctx = 0, reps = 0;
  int64_t median_ns = 0, avg_ns = 0, stddev_ns = 0, bytes = 0, flops = 0;
  double gbps = 0, tflops = 0, ceiling_pct = 0, tokens_per_s = 0;
  std::string samples_ns_json = "[]";
  int64_t peak_mem_bytes = 0;
};

struct DeviceRecord {
  std::string host, kind = "cpu", name, uuid, driver, compute_capability, mig, extra_json = "{}";
  int64_t memory_bytes = 0;
};

struct RunSummary {
  std::string run_id, command, argv_json, status, started_at, finished_at, settings_json, notes;
  std::optional<int64_t> exit_code, seed;
  double wall_seconds = 0;
  std::string model_label, ref_model_label, git_rev, device_name;
  int64_t n_samples = 0, n_metrics = 0, n_perf = 0, n_artifacts = 0;
};

class Store {
 public:
  static constexpr int kSchemaVersion = 1;
  // Opens (creating when absent) and migrates. Throws for an unreadable file, a non-database, or a schema
  // newer than this build understands.
  static std::unique_ptr<Store> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  int schema_version();

  // Runs. begin_run records build and this host's CPU device; returns a fresh uuid.
  std::string begin_run(const std::string& command, const std::vector<std::string>& argv,
                        const std::string& settings_json = "{}", std::optional<int64_t> seed = std::nullopt);
  void end_run(const std::string& run_id, const std::string& status, int exit_code);
  void set_run_settings(const std::string& run_id, const std::string& settings_json);
  void set_run_seed(const std::string& run_id, int64_t seed);
  void set_run_device(const std::string& run_id, const DeviceRecord& device);
  void set_run_model(const std::string& run_id, int64_t model_id, std::optional<int64_t> ref_model_id = std::nullopt);
  void set_run_note(const std::string& run_id, const std::string& note);

  int64_t upsert_model(const ModelRecord& m);
  int64_t upsert_device(const DeviceRecord& d);
  int64_t upsert_task(const TaskRecord& t);

  void add_sample(const SampleRow& s);                 // upsert on (run, task, idx)
  std::vector<SampleRow> samples(const std::string& run_id, int64_t task_id);
  void add_metric(const MetricRow& m);                 // upsert on (run, task, name, bucket)
  std::vector<MetricRow> metrics(const std::string& run_id);
  void add_perf(const PerfRow& p);
  std::vector<PerfRow> perf(const std::string& run_id);
  void add_artifact(const std::string& run_id, const std::string& kind, const std::string& path,
                    const std::string& sha256, int64_t size_bytes);
  void add_event(const std::string& run_id, const std::string& key, const std::string& value_json);

  std::vector<RunSummary> list_runs(int limit = 50, const std::string& command = "");
  // Exact id or a unique prefix; throws when none or several match.
  RunSummary get_run(const std::string& run_id_or_prefix);
  std::string resolve_run(const std::string& run_id_or_prefix);

  // Run a statement batch inside BEGIN IMMEDIATE ... COMMIT with busy retries (internal, also for tests).
  void exec(const std::string& sql);

 private:
  explicit Store(std::string path) : path_(std::move(path)) {}
  void migrate();
  std::string path_;
  sqlite3* db_ = nullptr;
};

// Helpers shared by the commands that record provenance.
std::string now_iso8601();   // UTC, e.g. 2026-11-22T12:34:56.789Z
std::string new_uuid();      // random v4
DeviceRecord this_cpu_device();

}  // namespace ling
