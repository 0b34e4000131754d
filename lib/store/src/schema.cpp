// Schema migrations of the results database (eval.md §8.1). One deviation from the proposed schema:
// metrics.task_id is NULL for run-level metrics, which a STRICT table forbids in a primary key, so the key
// (run_id, task_id, name, bucket) is a unique index over ifnull(task_id, -1) instead. Migration N takes schema_version N-1 to N and
// runs in one transaction; a database whose version is newer than kSchemaVersion is refused.
#include "schema.h"

namespace ling::store_detail {

const std::vector<std::string>& migrations() {
  static const std::vector<std::string> steps = {
      // 1: the initial schema.
      R"SQL(
CREATE TABLE builds(
  build_id INTEGER PRIMARY KEY, git_rev TEXT NOT NULL, git_dirty INTEGER, version TEXT, compiler TEXT,
  cuda_version TEXT, build_type TEXT, flags TEXT,
  UNIQUE(git_rev, git_dirty, compiler, cuda_version, build_type, flags)) STRICT;
CREATE TABLE devices(
  device_id INTEGER PRIMARY KEY, host TEXT, kind TEXT CHECK(kind IN ('cpu','gpu')), name TEXT, uuid TEXT,
  driver TEXT, compute_capability TEXT, memory_bytes INTEGER, mig TEXT,
  extra_json TEXT CHECK(extra_json IS NULL OR json_valid(extra_json)), UNIQUE(host, uuid)) STRICT;
CREATE TABLE models(
  model_id INTEGER PRIMARY KEY, label TEXT, arch TEXT, model_type TEXT, config_sha256 TEXT NOT NULL,
  config_json TEXT NOT NULL CHECK(json_valid(config_json)), tokenizer_sha256 TEXT, weights_digest TEXT NOT NULL,
  n_params INTEGER, n_params_active INTEGER, dtype_summary TEXT,
  origin TEXT CHECK(origin IN ('generated','trained','converted','downloaded')),
  parent_model_id INTEGER REFERENCES models(model_id), created_at TEXT,
  UNIQUE(weights_digest, config_sha256, tokenizer_sha256)) STRICT;
CREATE TABLE model_files(
  model_id INTEGER NOT NULL REFERENCES models(model_id), relpath TEXT NOT NULL, size_bytes INTEGER,
  sha256 TEXT, header_sha256 TEXT, n_tensors INTEGER, PRIMARY KEY(model_id, relpath)) STRICT;
CREATE TABLE runs(
  run_id TEXT PRIMARY KEY, command TEXT NOT NULL, argv_json TEXT CHECK(json_valid(argv_json)),
  model_id INTEGER REFERENCES models(model_id), ref_model_id INTEGER REFERENCES models(model_id),
  build_id INTEGER REFERENCES builds(build_id), device_id INTEGER REFERENCES devices(device_id), seed INTEGER,
  settings_json TEXT CHECK(settings_json IS NULL OR json_valid(settings_json)),
  status TEXT CHECK(status IN ('running','ok','failed','aborted')), exit_code INTEGER, started_at TEXT,
  finished_at TEXT, wall_seconds REAL, notes TEXT) STRICT;
CREATE INDEX runs_started ON runs(started_at);
CREATE TABLE tasks(
  task_id INTEGER PRIMARY KEY, name TEXT NOT NULL, family TEXT, generator_version TEXT NOT NULL,
  params_json TEXT CHECK(json_valid(params_json)), params_sha256 TEXT NOT NULL, corpus_sha256 TEXT,
  UNIQUE(name, generator_version, params_sha256)) STRICT;
CREATE TABLE samples(
  run_id TEXT NOT NULL REFERENCES runs(run_id), task_id INTEGER NOT NULL REFERENCES tasks(task_id),
  idx INTEGER NOT NULL, seed INTEGER, context_tokens INTEGER, depth_pct REAL, prompt_sha256 TEXT,
  prompt_text TEXT, target_json TEXT CHECK(target_json IS NULL OR json_valid(target_json)), output_text TEXT,
  output_ids BLOB, n_prompt_tokens INTEGER, n_gen_tokens INTEGER, score REAL, correct INTEGER,
  prefill_ms REAL, decode_ms REAL, extra_json TEXT CHECK(extra_json IS NULL OR json_valid(extra_json)),
  PRIMARY KEY(run_id, task_id, idx)) STRICT;
CREATE TABLE metrics(
  run_id TEXT NOT NULL REFERENCES runs(run_id), task_id INTEGER REFERENCES tasks(task_id), name TEXT NOT NULL,
  bucket TEXT NOT NULL DEFAULT '', value REAL, stderr REAL, n INTEGER, higher_is_better INTEGER,
  aggregation TEXT, filter TEXT) STRICT;
CREATE UNIQUE INDEX metrics_key ON metrics(run_id, ifnull(task_id, -1), name, bucket);
CREATE TABLE perf(
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  phase TEXT CHECK(phase IN ('prefill','decode','load','convert','kernel')), op TEXT,
  shape_json TEXT CHECK(shape_json IS NULL OR json_valid(shape_json)), n_tokens INTEGER, batch INTEGER,
  ctx INTEGER, reps INTEGER, median_ns INTEGER, avg_ns INTEGER, stddev_ns INTEGER, bytes INTEGER,
  flops INTEGER, gbps REAL, tflops REAL, ceiling_pct REAL, tokens_per_s REAL,
  samples_ns_json TEXT CHECK(samples_ns_json IS NULL OR json_valid(samples_ns_json)),
  peak_mem_bytes INTEGER) STRICT;
CREATE INDEX perf_run ON perf(run_id);
CREATE TABLE artifacts(
  run_id TEXT NOT NULL REFERENCES runs(run_id), kind TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT,
  size_bytes INTEGER, PRIMARY KEY(run_id, kind, path)) STRICT;
CREATE TABLE events(
  run_id TEXT NOT NULL REFERENCES runs(run_id), t_ms INTEGER, key TEXT,
  value_json TEXT CHECK(value_json IS NULL OR json_valid(value_json))) STRICT;
CREATE VIEW v_latest_metrics AS
  SELECT r.model_id, m.task_id, m.name, m.bucket, m.value, m.stderr, m.n, m.run_id, r.finished_at
  FROM metrics m JOIN runs r ON r.run_id = m.run_id
  WHERE r.status = 'ok' AND r.finished_at = (
    SELECT max(r2.finished_at) FROM runs r2 JOIN metrics m2 ON m2.run_id = r2.run_id
    WHERE r2.status = 'ok' AND r2.model_id IS r.model_id AND m2.task_id IS m.task_id AND m2.name = m.name
      AND m2.bucket = m.bucket);
CREATE VIEW v_compare AS
  SELECT a.run_id AS run_a, b.run_id AS run_b, a.task_id, a.name, a.bucket, a.value AS value_a,
         b.value AS value_b, b.value - a.value AS delta
  FROM metrics a JOIN metrics b ON a.task_id IS b.task_id AND a.name = b.name AND a.bucket = b.bucket;
)SQL",
  };
  return steps;
}

}  // namespace ling::store_detail
