// `ling results list | show RUN | compare A B | export RUN --csv|--json | plot RUN... --out FILE.svg`: reads
// the results store (eval.md §8). compare and plot also take metric JSON files (`ling eval --json` output or
// `ling results export --json`), so results can be compared and drawn without a database.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/eval/plot.h"
#include "ling/eval/results.h"
#include "ling/store/store.h"

namespace ling {
namespace {

struct ResultsOptions {
  std::vector<std::string> runs;  // run ids or metric JSON files
  std::string out;                // plot: output .svg
  bool csv = false, json = false; // export format
  std::string title;              // plot title
};

bool is_json_file(const std::string& s) {
  return s.size() > 5 && s.substr(s.size() - 5) == ".json" && std::filesystem::exists(s);
}

// Task names by task_id, recorded by `ling eval` in the run's settings_json.
std::map<int64_t, std::string> task_names(const RunSummary& r) {
  std::map<int64_t, std::string> out;
  try {
    auto j = nlohmann::json::parse(r.settings_json.empty() ? "{}" : r.settings_json);
    if (j.is_object() && j.contains("task_ids") && j["task_ids"].is_object())
      for (auto& [id, name] : j["task_ids"].items())
        if (name.is_string()) out[std::stoll(id)] = name.get<std::string>();
  } catch (const std::exception&) {
  }
  return out;
}

// Metrics of a run id (from the store) or of a JSON file.
std::vector<eval::MetricRow> metrics_of(Context& ctx, const std::string& run) {
  if (is_json_file(run)) return eval::read_metrics_json(run);
  Store& st = ctx.require_store();
  RunSummary r = st.get_run(run);
  auto names = task_names(r);
  std::vector<eval::MetricRow> out;
  for (const auto& m : st.metrics(r.run_id)) {
    eval::MetricRow e;
    e.run_id = r.run_id;
    if (m.task_id) e.task = names.count(*m.task_id) ? names[*m.task_id] : cat("task#", *m.task_id);
    e.name = m.name;
    e.bucket = m.bucket;
    e.value = m.value;
    e.stderr_ = m.stderr_value;
    e.n = m.n;
    e.higher_is_better = m.higher_is_better;
    out.push_back(e);
  }
  return out;
}

nlohmann::json run_json(const RunSummary& r) {
  auto parse = [](const std::string& s) {
    try {
      return s.empty() ? nlohmann::json() : nlohmann::json::parse(s);
    } catch (const std::exception&) {
      return nlohmann::json(s);
    }
  };
  return {{"run_id", r.run_id},
          {"command", r.command},
          {"argv", parse(r.argv_json)},
          {"status", r.status},
          {"started_at", r.started_at},
          {"finished_at", r.finished_at},
          {"wall_seconds", r.wall_seconds},
          {"seed", r.seed ? nlohmann::json(*r.seed) : nlohmann::json()},
          {"settings", parse(r.settings_json)},
          {"model", r.model_label},
          {"reference_model", r.ref_model_label},
          {"git_rev", r.git_rev},
          {"device", r.device_name},
          {"notes", r.notes},
          {"n_samples", r.n_samples},
          {"n_metrics", r.n_metrics}};
}

int cmd_list(Context& ctx) {
  Store& st = ctx.require_store();
  char line[400];
  std::snprintf(line, sizeof line, "%-36s  %-9s %-8s %-20s %-24s %9s %8s %8s\n", "run_id", "command", "status",
                "model", "started_at", "wall_s", "samples", "metrics");
  std::cout << line;
  for (const auto& r : st.list_runs(200)) {
    std::snprintf(line, sizeof line, "%-36s  %-9s %-8s %-20s %-24s %9.2f %8lld %8lld\n", r.run_id.c_str(),
                  r.command.c_str(), r.status.c_str(), r.model_label.substr(0, 20).c_str(), r.started_at.c_str(),
                  r.wall_seconds, static_cast<long long>(r.n_samples), static_cast<long long>(r.n_metrics));
    std::cout << line;
  }
  return 0;
}

int cmd_show(Context& ctx, const ResultsOptions& o) {
  LING_CHECK(o.runs.size() == 1, "ling results show: give one RUN");
  if (!is_json_file(o.runs[0])) std::cout << run_json(ctx.require_store().get_run(o.runs[0])).dump(2) << "\n";
  std::cout << eval::format_metric_rows(metrics_of(ctx, o.runs[0]));
  return 0;
}

int cmd_compare(Context& ctx, const ResultsOptions& o) {
  LING_CHECK(o.runs.size() == 2, "ling results compare: give RUN_A RUN_B");
  auto rows = eval::compare_metrics(metrics_of(ctx, o.runs[0]), metrics_of(ctx, o.runs[1]));
  std::cout << eval::format_compare(rows, o.runs[0], o.runs[1]);
  return 0;
}

int cmd_export(Context& ctx, const ResultsOptions& o) {
  LING_CHECK(o.runs.size() == 1, "ling results export: give one RUN");
  LING_CHECK(o.csv != o.json, "ling results export: choose --csv or --json");
  auto rows = metrics_of(ctx, o.runs[0]);
  if (o.csv || is_json_file(o.runs[0])) {
    std::cout << (o.csv ? eval::metrics_csv(rows) : eval::metrics_json(rows));
    return 0;
  }
  Store& st = ctx.require_store();
  RunSummary r = st.get_run(o.runs[0]);
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& [id, name] : task_names(r))
    for (const auto& s : st.samples(r.run_id, id)) {
      nlohmann::json target, extra;
      try {
        target = nlohmann::json::parse(s.target_json);
        extra = nlohmann::json::parse(s.extra_json);
      } catch (const std::exception&) {
      }
      samples.push_back({{"task", name},
                         {"idx", s.idx},
                         {"seed", s.seed},
                         {"context_tokens", s.context_tokens},
                         {"depth_pct", s.depth_pct ? nlohmann::json(*s.depth_pct) : nlohmann::json()},
                         {"prompt_sha256", s.prompt_sha256},
                         {"target", target},
                         {"output_text", s.output_text},
                         {"n_prompt_tokens", s.n_prompt_tokens},
                         {"n_gen_tokens", s.n_gen_tokens},
                         {"score", s.score},
                         {"correct", s.correct},
                         {"prefill_ms", s.prefill_ms},
                         {"decode_ms", s.decode_ms},
                         {"extra", extra}});
    }
  const auto replace = nlohmann::json::error_handler_t::replace;
  std::cout << eval::metrics_json(rows, run_json(r).dump(-1, ' ', false, replace), samples.dump(-1, ' ', false, replace));
  return 0;

}

int cmd_plot(Context& ctx, const ResultsOptions& o) {
  LING_CHECK(!o.runs.empty(), "ling results plot: give at least one RUN");
  LING_CHECK(!o.out.empty(), "ling results plot: --out FILE.svg is required");
  std::vector<eval::PlotRow> rows;
  for (const auto& run : o.runs) {
    std::string label = is_json_file(run) ? std::filesystem::path(run).stem().string() : run.substr(0, 8);
    if (!is_json_file(run)) {  // "model (run)" reads better in legends than a bare id
      const RunSummary r = ctx.require_store().get_run(run);
      if (!r.model_label.empty()) label = r.model_label + " (" + r.run_id.substr(0, 8) + ")";
    }
    for (const auto& m : metrics_of(ctx, run)) rows.push_back({label, m.task, m.name, m.bucket, m.value});
  }
  std::string title = o.title;
  if (title.empty()) title = "ling results: " + std::to_string(o.runs.size()) + (o.runs.size() == 1 ? " run" : " runs");
  eval::write_file_atomic(o.out, eval::render_svg(rows, title));
  std::cerr << "wrote " << o.out << "\n";
  return 0;
}

}  // namespace

Command register_results(CLI::App& app) {
  auto o = std::make_shared<ResultsOptions>();
  Command c;
  c.record = false;
  c.app = app.add_subcommand("results", "List, show, compare, export and plot stored evaluation results");
  c.app->require_subcommand(1);
  auto* list = c.app->add_subcommand("list", "Runs in the database");
  auto* show = c.app->add_subcommand("show", "One run: provenance and metrics");
  show->add_option("run", o->runs, "Run id or metrics JSON file")->required();
  auto* cmp = c.app->add_subcommand("compare", "Per-metric deltas (B - A) per task and bucket");
  cmp->add_option("runs", o->runs, "RUN_A RUN_B (run ids or metrics JSON files)")->required()->expected(2);
  auto* exp = c.app->add_subcommand("export", "Metrics of a run as CSV or JSON on stdout");
  exp->add_option("run", o->runs, "Run id or metrics JSON file")->required();
  exp->add_flag("--csv", o->csv, "CSV");
  exp->add_flag("--json", o->json, "JSON");
  auto* plot = c.app->add_subcommand("plot", "Standalone SVG: score vs context, depth x length heatmaps, PPL/KLD bars");
  plot->add_option("runs", o->runs, "Run ids or metrics JSON files")->required();
  plot->add_option("--out,-o", o->out, "Output .svg (written atomically)")->required();
  plot->add_option("--title", o->title, "Plot title");
  c.run = [o, list, show, cmp, exp, plot](Context& ctx) -> int {
    if (list->parsed()) return cmd_list(ctx);
    if (show->parsed()) return cmd_show(ctx, *o);
    if (cmp->parsed()) return cmd_compare(ctx, *o);
    if (exp->parsed()) return cmd_export(ctx, *o);
    if (plot->parsed()) return cmd_plot(ctx, *o);
    LING_UNREACHABLE("no results subcommand");
  };
  return c;
}

}  // namespace ling
