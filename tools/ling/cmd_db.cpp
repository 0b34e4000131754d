// `ling db runs|show|migrate`: read the results database back (eval.md §8). `runs` lists recent runs; `show`
// prints one run with its metrics and perf rows (a unique prefix of the run id is enough). Both have --json.
// `ling db` itself records no run.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/table.h"
#include "ling/store/store.h"

namespace ling {

namespace {

struct DbOptions {
  int limit = 20;
  std::string command;
  std::string run_id;
  bool json = false;
};

nlohmann::ordered_json run_json(const RunSummary& r) {
  nlohmann::ordered_json j;
  j["run_id"] = r.run_id;
  j["command"] = r.command;
  j["status"] = r.status;
  j["exit_code"] = r.exit_code ? nlohmann::ordered_json(*r.exit_code) : nlohmann::ordered_json(nullptr);
  j["started_at"] = r.started_at;
  j["finished_at"] = r.finished_at;
  j["wall_seconds"] = r.wall_seconds;
  j["argv"] = nlohmann::json::parse(r.argv_json.empty() ? "[]" : r.argv_json);
  j["settings"] = r.settings_json.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json::parse(r.settings_json);
  j["seed"] = r.seed ? nlohmann::ordered_json(*r.seed) : nlohmann::ordered_json(nullptr);
  j["model"] = r.model_label;
  j["ref_model"] = r.ref_model_label;
  j["git_rev"] = r.git_rev;
  j["device"] = r.device_name;
  j["notes"] = r.notes;
  j["counts"] = {{"samples", r.n_samples}, {"metrics", r.n_metrics}, {"perf", r.n_perf}, {"artifacts", r.n_artifacts}};
  return j;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

int run_runs(const DbOptions& o, Context& ctx) {
  Store& s = ctx.require_store();
  auto runs = s.list_runs(o.limit, o.command);
  if (o.json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : runs) arr.push_back(run_json(r));
    std::cout << nlohmann::ordered_json{{"runs", arr}}.dump(2) << "\n";
    return 0;
  }
  Table t({"run", "command", "status", "exit", "started", "wall s", "model"});
  for (const auto& r : runs)
    t.row({r.run_id.substr(0, 8), r.command, r.status, r.exit_code ? std::to_string(*r.exit_code) : "",
           r.started_at, fixed(r.wall_seconds, 2), r.model_label});
  t.print(std::cout);
  return 0;
}

int run_show(const DbOptions& o, Context& ctx) {
  Store& s = ctx.require_store();
  RunSummary r = s.get_run(o.run_id);
  auto metrics = s.metrics(r.run_id);
  auto perf = s.perf(r.run_id);
  if (o.json) {
    nlohmann::ordered_json j = run_json(r);
    nlohmann::ordered_json mj = nlohmann::ordered_json::array(), pj = nlohmann::ordered_json::array();
    for (const auto& m : metrics)
      mj.push_back({{"task_id", m.task_id ? nlohmann::ordered_json(*m.task_id) : nlohmann::ordered_json(nullptr)},
                    {"name", m.name}, {"bucket", m.bucket}, {"value", m.value}, {"n", m.n}});
    for (const auto& p : perf)
      pj.push_back({{"phase", p.phase}, {"op", p.op}, {"shape", nlohmann::json::parse(p.shape_json)},
                    {"median_ns", p.median_ns}, {"bytes", p.bytes}, {"flops", p.flops}, {"gbps", p.gbps},
                    {"tflops", p.tflops}, {"ceiling_pct", p.ceiling_pct}, {"tokens_per_s", p.tokens_per_s}});
    j["metrics"] = mj;
    j["perf"] = pj;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  Table t({"field", "value"});
  nlohmann::ordered_json j = run_json(r);
  for (auto it = j.begin(); it != j.end(); ++it)
    t.row({it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump()});
  t.print(std::cout);
  if (!metrics.empty()) {
    std::cout << "\n";
    Table mt({"task", "metric", "bucket", "value", "n"});
    for (const auto& m : metrics)
      mt.row({m.task_id ? std::to_string(*m.task_id) : "", m.name, m.bucket, fixed(m.value, 6), std::to_string(m.n)});
    mt.print(std::cout);
  }
  if (!perf.empty()) {
    std::cout << "\n";
    Table pt({"phase", "op", "median ms", "GB/s", "TFLOP/s", "% ceiling", "tok/s"});
    for (const auto& p : perf)
      pt.row({p.phase, p.op, fixed(double(p.median_ns) / 1e6, 3), fixed(p.gbps, 1), fixed(p.tflops, 2),
              fixed(p.ceiling_pct, 1), fixed(p.tokens_per_s, 1)});
    pt.print(std::cout);
  }
  return 0;
}

}  // namespace

Command register_db(CLI::App& app) {
  auto o = std::make_shared<DbOptions>();
  Command c;
  c.record = false;
  c.app = app.add_subcommand("db", "Read the results database: runs, show, migrate");
  c.app->require_subcommand(1);
  auto* runs = c.app->add_subcommand("runs", "List recent runs");
  runs->add_option("--limit", o->limit, "At most this many runs (newest first)");
  runs->add_option("--command", o->command, "Only runs of this subcommand");
  runs->add_flag("--json", o->json, "JSON output");
  auto* show = c.app->add_subcommand("show", "Show one run with its metrics and perf rows");
  show->add_option("run", o->run_id, "Run id or a unique prefix")->required();
  show->add_flag("--json", o->json, "JSON output");
  auto* migrate = c.app->add_subcommand("migrate", "Create or upgrade the database schema");
  auto* path = c.app->add_subcommand("path", "Print the database path in use");
  c.run = [o, runs, show, migrate, path](Context& ctx) -> int {
    if (runs->parsed()) return run_runs(*o, ctx);
    if (show->parsed()) return run_show(*o, ctx);
    if (migrate->parsed()) {
      Store& s = ctx.require_store();
      std::cout << s.path() << ": schema version " << s.schema_version() << "\n";
      return 0;
    }
    if (path->parsed()) {
      std::cout << ctx.global.db_path << "\n";
      return 0;
    }
    return 1;
  };
  return c;
}

}  // namespace ling
