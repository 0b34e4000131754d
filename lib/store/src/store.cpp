// Store: opening and migrating the results database, runs, models, tasks, samples, metrics, perf rows,
// artifacts and events (store.h, eval.md §8).
#include "ling/store/store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "ling/core/build_info.h"
#include "ling/core/error.h"
#include "schema.h"
#include "statement.h"

namespace ling {

std::string now_iso8601() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
  return buf;
}

std::string new_uuid() {
  std::random_device rd;
  std::mt19937_64 g((uint64_t(rd()) << 32) ^ rd() ^ uint64_t(::getpid()) ^
                    uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()));
  uint64_t a = g(), b = g();
  a = (a & ~0xf000ULL) | 0x4000ULL;                      // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32), unsigned((a >> 16) & 0xffff),
                unsigned(a & 0xffff), unsigned(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
  return buf;
}

DeviceRecord this_cpu_device() {
  DeviceRecord d;
  d.host = host_name();
  d.kind = "cpu";
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  int cores = 0;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0 && d.name.empty()) d.name = line.substr(line.find(':') + 2);
    if (line.rfind("processor", 0) == 0) ++cores;
  }
  if (d.name.empty()) d.name = "cpu";
  std::ifstream mem("/proc/meminfo");
  while (std::getline(mem, line))
    if (line.rfind("MemTotal:", 0) == 0) d.memory_bytes = std::stoll(line.substr(9)) * 1024;
  d.uuid = "cpu:" + d.host;
  d.extra_json = nlohmann::json{{"cores", cores}}.dump();
  return d;
}

namespace {

void exec_raw(sqlite3* db, const std::string& path, const std::string& sql) {
  for (int attempt = 0;; ++attempt) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return;
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * attempt));
      continue;
    }
    LING_THROW(path, ": database error: ", msg);
  }
}

// BEGIN IMMEDIATE ... COMMIT, rolled back when the body throws.
template <typename F>
void transaction(sqlite3* db, const std::string& path, F&& body) {
  exec_raw(db, path, "BEGIN IMMEDIATE");
  try {
    body();
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec_raw(db, path, "COMMIT");
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& path) {
  std::unique_ptr<Store> s(new Store(path));
  int rc = sqlite3_open_v2(path.c_str(), &s->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = s->db_ ? sqlite3_errmsg(s->db_) : sqlite3_errstr(rc);
    LING_THROW(path, ": cannot open the results database (", msg, ")");
  }
  sqlite3_busy_timeout(s->db_, 10000);
  // The first statement that reads the file tells a non-database apart. Switching a fresh database to WAL
  // takes an exclusive lock without consulting the busy handler, so concurrent creators retry here.
  for (int attempt = 0;; ++attempt) {
    char* err = nullptr;
    int rc2 = sqlite3_exec(s->db_, "PRAGMA foreign_keys=ON; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                           nullptr, nullptr, &err);
    if (rc2 == SQLITE_OK) break;
    std::string msg = err ? err : sqlite3_errstr(rc2);
    sqlite3_free(err);
    if ((rc2 == SQLITE_BUSY || rc2 == SQLITE_LOCKED) && attempt < 200) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10 + 5 * (attempt % 10)));
      continue;
    }
    LING_THROW(path, ": not a usable results database (", msg, ")");
  }
  s->migrate();
  return s;
}

Store::~Store() {
  if (db_) sqlite3_close_v2(db_);
}

int Store::schema_version() {
  Statement has(db_, path_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_meta'");
  has.step();
  if (has.i64(0) == 0) return 0;
  Statement q(db_, path_, "SELECT value FROM schema_meta WHERE key='schema_version'");
  return q.step() ? std::stoi(q.text(0)) : 0;
}

void Store::migrate() {
  exec_raw(db_, path_, "CREATE TABLE IF NOT EXISTS schema_meta(key TEXT PRIMARY KEY, value TEXT) STRICT");
  const auto& steps = store_detail::migrations();
  int have = schema_version();
  if (have > int(steps.size()))
    LING_THROW(path_, ": results database has schema version ", have, ", newer than this build's ", steps.size(),
               " (upgrade ling)");
  while (have < int(steps.size())) {
    transaction(db_, path_, [&] {
      int now = schema_version();  // another process may have migrated meanwhile
      if (now != have) return;
      exec_raw(db_, path_, steps[size_t(have)]);
      Statement up(db_, path_,
                   "INSERT INTO schema_meta(key, value) VALUES('schema_version', ?1) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      up.bind(1, std::to_string(have + 1)).run();
    });
    have = schema_version();
  }
}

void Store::exec(const std::string& sql) {
  transaction(db_, path_, [&] { exec_raw(db_, path_, sql); });
}

int64_t Store::upsert_device(const DeviceRecord& d) {
  int64_t id = 0;
  transaction(db_, path_, [&] {
    Statement ins(db_, path_,
                  "INSERT INTO devices(host, kind, name, uuid, driver, compute_capability, memory_bytes, mig, "
                  "extra_json) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT(host, uuid) DO UPDATE SET "
                  "name=excluded.name, driver=excluded.driver, memory_bytes=excluded.memory_bytes");
    ins.bind(1, d.host).bind(2, d.kind).bind(3, d.name).bind(4, d.uuid).bind(5, d.driver)
        .bind(6, d.compute_capability).bind(7, d.memory_bytes).bind(8, d.mig).bind(9, d.extra_json).run();
    Statement q(db_, path_, "SELECT device_id FROM devices WHERE host=?1 AND uuid=?2");
    q.bind(1, d.host).bind(2, d.uuid);
    q.step();
    id = q.i64(0);
  });
  return id;
}

std::string Store::begin_run(const std::string& command, const std::vector<std::string>& argv,
                             const std::string& settings_json, std::optional<int64_t> seed) {
  const BuildInfo& b = build_info();
  const std::string run_id = new_uuid();
  const int64_t device_id = upsert_device(this_cpu_device());
  transaction(db_, path_, [&] {
    Statement ins(db_, path_,
                  "INSERT INTO builds(git_rev, git_dirty, version, compiler, cuda_version, build_type, flags) "
                  "VALUES(?1,?2,?3,?4,?5,?6,'') ON CONFLICT DO NOTHING");
    ins.bind(1, b.git_rev).bind(2, int64_t(b.git_dirty)).bind(3, b.version).bind(4, b.compiler)
        .bind(5, b.cuda ? "cuda" : "").bind(6, b.build_type).run();
    Statement q(db_, path_,
                "SELECT build_id FROM builds WHERE git_rev=?1 AND git_dirty=?2 AND compiler=?3 AND cuda_version=?4 "
                "AND build_type=?5 AND flags=''");
    q.bind(1, b.git_rev).bind(2, int64_t(b.git_dirty)).bind(3, b.compiler).bind(4, b.cuda ? "cuda" : "")
        .bind(5, b.build_type);
    q.step();
    const int64_t build_id = q.i64(0);
    Statement run(db_, path_,
                  "INSERT INTO runs(run_id, command, argv_json, build_id, device_id, seed, settings_json, status, "
                  "started_at) VALUES(?1,?2,?3,?4,?5,?6,?7,'running',?8)");
    run.bind(1, run_id).bind(2, command).bind(3, nlohmann::json(argv).dump()).bind(4, build_id).bind(5, device_id)
        .bind(6, seed).bind(7, settings_json).bind(8, now_iso8601()).run();
  });
  return run_id;
}

void Store::end_run(const std::string& run_id, const std::string& status, int exit_code) {
  const std::string now = now_iso8601();
  Statement up(db_, path_,
               "UPDATE runs SET status=?2, exit_code=?3, finished_at=?4, "
               "wall_seconds=(julianday(?4) - julianday(started_at)) * 86400.0 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, status).bind(3, int64_t(exit_code)).bind(4, now).run();
}

void Store::set_run_settings(const std::string& run_id, const std::string& settings_json) {
  Statement up(db_, path_, "UPDATE runs SET settings_json=?2 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, settings_json).run();
}

void Store::set_run_seed(const std::string& run_id, int64_t seed) {
  Statement up(db_, path_, "UPDATE runs SET seed=?2 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, seed).run();
}

void Store::set_run_device(const std::string& run_id, const DeviceRecord& device) {
  const int64_t id = upsert_device(device);
  Statement up(db_, path_, "UPDATE runs SET device_id=?2 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, id).run();
}

void Store::set_run_model(const std::string& run_id, int64_t model_id, std::optional<int64_t> ref_model_id) {
  Statement up(db_, path_, "UPDATE runs SET model_id=?2, ref_model_id=?3 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, model_id).bind(3, ref_model_id).run();
}

void Store::set_run_note(const std::string& run_id, const std::string& note) {
  Statement up(db_, path_, "UPDATE runs SET notes=?2 WHERE run_id=?1");
  up.bind(1, run_id).bind(2, note).run();
}

int64_t Store::upsert_model(const ModelRecord& m) {
  int64_t id = 0;
  transaction(db_, path_, [&] {
    Statement ins(db_, path_,
                  "INSERT INTO models(label, arch, model_type, config_sha256, config_json, tokenizer_sha256, "
                  "weights_digest, n_params, n_params_active, dtype_summary, origin, parent_model_id, created_at) "
                  "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13) ON CONFLICT DO NOTHING");
    ins.bind(1, m.label).bind(2, m.arch).bind(3, m.model_type).bind(4, m.config_sha256).bind(5, m.config_json)
        .bind(6, m.tokenizer_sha256).bind(7, m.weights_digest).bind(8, m.n_params).bind(9, m.n_params_active)
        .bind(10, m.dtype_summary).bind(11, m.origin).bind(12, m.parent_model_id).bind(13, now_iso8601()).run();
    Statement q(db_, path_,
                "SELECT model_id FROM models WHERE weights_digest=?1 AND config_sha256=?2 AND tokenizer_sha256 IS ?3");
    q.bind(1, m.weights_digest).bind(2, m.config_sha256).bind(3, m.tokenizer_sha256);
    if (!q.step()) LING_THROW(path_, ": model row for '", m.label, "' not found after insert");
    id = q.i64(0);
  });
  return id;
}

int64_t Store::upsert_task(const TaskRecord& t) {
  int64_t id = 0;
  transaction(db_, path_, [&] {
    Statement ins(db_, path_,
                  "INSERT INTO tasks(name, family, generator_version, params_json, params_sha256, corpus_sha256) "
                  "VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT DO NOTHING");
    ins.bind(1, t.name).bind(2, t.family).bind(3, t.generator_version).bind(4, t.params_json)
        .bind(5, t.params_sha256).bind(6, t.corpus_sha256).run();
    Statement q(db_, path_, "SELECT task_id FROM tasks WHERE name=?1 AND generator_version=?2 AND params_sha256=?3");
    q.bind(1, t.name).bind(2, t.generator_version).bind(3, t.params_sha256);
    q.step();
    id = q.i64(0);
  });
  return id;
}

void Store::add_sample(const SampleRow& s) {
  Statement ins(db_, path_,
                "INSERT OR REPLACE INTO samples(run_id, task_id, idx, seed, context_tokens, depth_pct, prompt_sha256, "
                "prompt_text, target_json, output_text, output_ids, n_prompt_tokens, n_gen_tokens, score, correct, "
                "prefill_ms, decode_ms, extra_json) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)");
  ins.bind(1, s.run_id).bind(2, s.task_id).bind(3, s.idx).bind(4, s.seed).bind(5, s.context_tokens)
      .bind(6, s.depth_pct).bind(7, s.prompt_sha256);
  if (s.prompt_text.empty()) ins.bind(8, std::nullopt); else ins.bind(8, s.prompt_text);
  ins.bind(9, s.target_json).bind(10, s.output_text).bind_blob(11, s.output_ids.data(), s.output_ids.size() * 4)
      .bind(12, s.n_prompt_tokens).bind(13, s.n_gen_tokens).bind(14, s.score).bind(15, int64_t(s.correct))
      .bind(16, s.prefill_ms).bind(17, s.decode_ms).bind(18, s.extra_json).run();
}

std::vector<SampleRow> Store::samples(const std::string& run_id, int64_t task_id) {
  Statement q(db_, path_,
              "SELECT idx, seed, context_tokens, depth_pct, prompt_sha256, ifnull(prompt_text,''), target_json, "
              "output_text, output_ids, n_prompt_tokens, n_gen_tokens, score, correct, prefill_ms, decode_ms, "
              "extra_json FROM samples WHERE run_id=?1 AND task_id=?2 ORDER BY idx");
  q.bind(1, run_id).bind(2, task_id);
  std::vector<SampleRow> out;
  while (q.step()) {
    SampleRow s;
    s.run_id = run_id;
    s.task_id = task_id;
    s.idx = q.i64(0);
    s.seed = q.i64(1);
    s.context_tokens = q.i64(2);
    if (!q.is_null(3)) s.depth_pct = q.f64(3);
    s.prompt_sha256 = q.text(4);
    s.prompt_text = q.text(5);
    s.target_json = q.text(6);
    s.output_text = q.text(7);
    auto ids = q.blob(8);
    s.output_ids.resize(ids.size() / 4);
    if (!ids.empty()) std::memcpy(s.output_ids.data(), ids.data(), s.output_ids.size() * 4);
    s.n_prompt_tokens = q.i64(9);
    s.n_gen_tokens = q.i64(10);
    s.score = q.f64(11);
    s.correct = q.i64(12) != 0;
    s.prefill_ms = q.f64(13);
    s.decode_ms = q.f64(14);
    s.extra_json = q.text(15);
    out.push_back(std::move(s));
  }
  return out;
}

void Store::add_metric(const MetricRow& m) {
  transaction(db_, path_, [&] {
    Statement del(db_, path_,
                  "DELETE FROM metrics WHERE run_id=?1 AND task_id IS ?2 AND name=?3 AND bucket=?4");
    del.bind(1, m.run_id).bind(2, m.task_id).bind(3, m.name).bind(4, m.bucket).run();
    Statement ins(db_, path_,
                  "INSERT INTO metrics(run_id, task_id, name, bucket, value, stderr, n, higher_is_better, "
                  "aggregation, filter) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    ins.bind(1, m.run_id).bind(2, m.task_id).bind(3, m.name).bind(4, m.bucket).bind(5, m.value)
        .bind(6, m.stderr_value).bind(7, m.n).bind(8, int64_t(m.higher_is_better)).bind(9, m.aggregation)
        .bind(10, m.filter).run();
  });
}

std::vector<MetricRow> Store::metrics(const std::string& run_id) {
  Statement q(db_, path_,
              "SELECT task_id, name, bucket, value, stderr, n, higher_is_better, aggregation, ifnull(filter,'') "
              "FROM metrics WHERE run_id=?1 ORDER BY task_id, name, bucket");
  q.bind(1, run_id);
  std::vector<MetricRow> out;
  while (q.step()) {
    MetricRow m;
    m.run_id = run_id;
    if (!q.is_null(0)) m.task_id = q.i64(0);
    m.name = q.text(1);
    m.bucket = q.text(2);
    m.value = q.f64(3);
    if (!q.is_null(4)) m.stderr_value = q.f64(4);
    m.n = q.i64(5);
    m.higher_is_better = q.i64(6) != 0;
    m.aggregation = q.text(7);
    m.filter = q.text(8);
    out.push_back(std::move(m));
  }
  return out;
}

void Store::add_perf(const PerfRow& p) {
  Statement ins(db_, path_,
                "INSERT INTO perf(run_id, phase, op, shape_json, n_tokens, batch, ctx, reps, median_ns, avg_ns, "
                "stddev_ns, bytes, flops, gbps, tflops, ceiling_pct, tokens_per_s, samples_ns_json, peak_mem_bytes) "
                "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)");
  ins.bind(1, p.run_id).bind(2, p.phase).bind(3, p.op).bind(4, p.shape_json).bind(5, p.n_tokens).bind(6, p.batch)
      .bind(7, p.ctx).bind(8, p.reps).bind(9, p.median_ns).bind(10, p.avg_ns).bind(11, p.stddev_ns)
      .bind(12, p.bytes).bind(13, p.flops).bind(14, p.gbps).bind(15, p.tflops).bind(16, p.ceiling_pct)
      .bind(17, p.tokens_per_s).bind(18, p.samples_ns_json).bind(19, p.peak_mem_bytes).run();
}

std::vector<PerfRow> Store::perf(const std::string& run_id) {
  Statement q(db_, path_,
              "SELECT phase, op, shape_json, n_tokens, batch, ctx, reps, median_ns, avg_ns, stddev_ns, bytes, flops, "
              "gbps, tflops, ceiling_pct, tokens_per_s FROM perf WHERE run_id=?1 ORDER BY rowid");
  q.bind(1, run_id);
  std::vector<PerfRow> out;
  while (q.step()) {
    PerfRow p;
    p.run_id = run_id;
    p.phase = q.text(0);
    p.op = q.text(1);
    p.shape_json = q.text(2);
    p.n_tokens = q.i64(3);
    p.batch = q.i64(4);
    p.ctx = q.i64(5);
    p.reps = q.i64(6);
    p.median_ns = q.i64(7);
    p.avg_ns = q.i64(8);
    p.stddev_ns = q.i64(9);
    p.bytes = q.i64(10);
    p.flops = q.i64(11);
    p.gbps = q.f64(12);
    p.tflops = q.f64(13);
    p.ceiling_pct = q.f64(14);
    p.tokens_per_s = q.f64(15);
    out.push_back(std::move(p));
  }
  return out;
}

void Store::add_artifact(const std::string& run_id, const std::string& kind, const std::string& path,
                         const std::string& sha256, int64_t size_bytes) {
  Statement ins(db_, path_,
                "INSERT OR REPLACE INTO artifacts(run_id, kind, path, sha256, size_bytes) VALUES(?1,?2,?3,?4,?5)");
  ins.bind(1, run_id).bind(2, kind).bind(3, path).bind(4, sha256).bind(5, size_bytes).run();
}

void Store::add_event(const std::string& run_id, const std::string& key, const std::string& value_json) {
  using namespace std::chrono;
  const int64_t t_ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  Statement ins(db_, path_, "INSERT INTO events(run_id, t_ms, key, value_json) VALUES(?1,?2,?3,?4)");
  ins.bind(1, run_id).bind(2, t_ms).bind(3, key).bind(4, value_json).run();
}

namespace {
const char* kRunSelect =
    "SELECT r.run_id, r.command, r.argv_json, r.status, ifnull(r.started_at,''), ifnull(r.finished_at,''), "
    "ifnull(r.settings_json,''), ifnull(r.notes,''), r.exit_code, r.seed, ifnull(r.wall_seconds,0), "
    "ifnull(m.label,''), ifnull(rm.label,''), ifnull(b.git_rev,''), ifnull(d.name,''), "
    "(SELECT count(*) FROM samples s WHERE s.run_id=r.run_id), (SELECT count(*) FROM metrics x WHERE x.run_id=r.run_id), "
    "(SELECT count(*) FROM perf p WHERE p.run_id=r.run_id), (SELECT count(*) FROM artifacts a WHERE a.run_id=r.run_id) "
    "FROM runs r LEFT JOIN models m ON m.model_id=r.model_id LEFT JOIN models rm ON rm.model_id=r.ref_model_id "
    "LEFT JOIN builds b ON b.build_id=r.build_id LEFT JOIN devices d ON d.device_id=r.device_id ";

RunSummary read_run(const Statement& q) {
  RunSummary r;
  r.run_id = q.text(0);
  r.command = q.text(1);
  r.argv_json = q.text(2);
  r.status = q.text(3);
  r.started_at = q.text(4);
  r.finished_at = q.text(5);
  r.settings_json = q.text(6);
  r.notes = q.text(7);
  if (!q.is_null(8)) r.exit_code = q.i64(8);
  if (!q.is_null(9)) r.seed = q.i64(9);
  r.wall_seconds = q.f64(10);
  r.model_label = q.text(11);
  r.ref_model_label = q.text(12);
  r.git_rev = q.text(13);
  r.device_name = q.text(14);
  r.n_samples = q.i64(15);
  r.n_metrics = q.i64(16);
  r.n_perf = q.i64(17);
  r.n_artifacts = q.i64(18);
  return r;
}
}  // namespace

std::vector<RunSummary> Store::list_runs(int limit, const std::string& command) {
  std::string sql = std::string(kRunSelect) + (command.empty() ? "" : "WHERE r.command = ?2 ") +
                    "ORDER BY r.started_at DESC LIMIT ?1";
  Statement q(db_, path_, sql.c_str());
  q.bind(1, int64_t(limit));
  if (!command.empty()) q.bind(2, command);
  std::vector<RunSummary> out;
  while (q.step()) out.push_back(read_run(q));
  return out;
}

std::string Store::resolve_run(const std::string& prefix) {
  LING_CHECK(!prefix.empty(), path_, ": empty run id");
  Statement q(db_, path_, "SELECT run_id FROM runs WHERE substr(run_id, 1, length(?1)) = ?1 LIMIT 2");
  q.bind(1, prefix);
  std::vector<std::string> ids;
  while (q.step()) ids.push_back(q.text(0));
  if (ids.empty()) LING_THROW(path_, ": no run '", prefix, "'");
  if (ids.size() > 1) LING_THROW(path_, ": run id prefix '", prefix, "' is ambiguous");
  return ids[0];
}

RunSummary Store::get_run(const std::string& prefix) {
  const std::string id = resolve_run(prefix);
  Statement q(db_, path_, (std::string(kRunSelect) + "WHERE r.run_id = ?1").c_str());
  q.bind(1, id);
  q.step();
  return read_run(q);
}

}  // namespace ling
