// `ling eval MODEL --task T[,T...]`: long-context tasks (passkey, RULER families), reasoning (arith, gsm8k),
// perplexity (ppl) and KL divergence against --reference (kld), run through the engine and recorded in the
// results store (eval.md §1-§4, §8). Work lives in ling_eval; this file binds options, opens the model and
// the store, and prints the metrics. With --no-db the metrics are only printed.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/fs.h"
#include "ling/core/error.h"
#include "ling/eval/adapters.h"
#include "ling/eval/runner.h"
#include "ling/eval/store_sink.h"
#include "ling/store/store.h"
#include "ling/eval/util.h"

namespace ling {
namespace {

struct EvalOptions {
  std::string model;                 // model folder (config.json, *.safetensors, tokenizer.json)
  std::string tasks;                 // comma-separated task names
  std::string contexts = "4K";       // prompt lengths for long-context tasks
  std::string depths = "0,50,100";   // needle depths (%)
  int64_t samples = 5;               // per grid cell / problems
  uint64_t seed = 0;
  std::string data;                  // gsm8k JSONL, or the text for ppl/kld and essay haystacks
  std::string reference;             // kld: the reference model folder
  std::string backend = "cpu";       // cpu | cuda
  int64_t tp = 1, ep = 1;            // --tp, --ep
  std::string resume;                // run id to continue
  int shots = 3;                     // arith/gsm8k solved examples
  int max_new_tokens = -1;           // -1: task default
  int64_t ppl_ctx = 512;             // ppl/kld window
  int64_t stride = 0;                // ppl/kld: 0 disjoint windows, else sliding stride
  int64_t max_windows = 0;           // ppl/kld: 0 = all
  int batch = 8;                     // samples decoded together
  bool keep_prompts = false;         // store decoded prompts
  bool json = false;                 // print metrics as JSON
};

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int run_eval(const EvalOptions& o, Context& ctx) {
  auto names = split_csv(o.tasks);
  LING_CHECK(!names.empty(), "ling eval: --task is empty");
  LING_CHECK(o.backend == "cpu" || o.backend == "cuda", "ling eval: --backend must be cpu or cuda, not '", o.backend,
             "'");
  bool text_tasks = false, gen_tasks = false;  // gen_tasks: tasks over the context grid
  for (auto& n : names) {
    if (n == "ppl" || n == "kld") text_tasks = true;
    else if (n != "arith" && n != "gsm8k") gen_tasks = true;
    LING_CHECK(n != "kld" || !o.reference.empty(), "ling eval: --task kld needs --reference MODEL2");
  }
  eval::TaskOptions topt;
  topt.contexts = eval::parse_size_list(o.contexts);
  topt.depths = eval::parse_double_list(o.depths);
  topt.samples = o.samples;
  topt.seed = o.seed;
  topt.shots = o.shots;
  topt.max_new_tokens = o.max_new_tokens;
  std::string text(eval::default_text()), text_name = eval::default_text_name();
  bool data_is_jsonl = o.data.size() > 6 && o.data.substr(o.data.size() - 6) == ".jsonl";
  if (!o.data.empty() && !data_is_jsonl) text = read_file(o.data), text_name = o.data;
  if (data_is_jsonl) topt.data_path = o.data;
  topt.text = text;
  topt.text_name = text_name;

  eval::ModelTokenizer tok(o.model);
  int64_t max_pos = 0;
  if (gen_tasks)
    for (int64_t c : topt.contexts) max_pos = std::max<int64_t>(max_pos, c + std::max(0, o.max_new_tokens));
  if (text_tasks) max_pos = std::max(max_pos, o.ppl_ctx);
  auto model = eval::open_engine_model(o.model, o.backend, max_pos, o.tp, o.ep);
  std::unique_ptr<eval::EngineModel> ref;
  LING_CHECK(tok.tokenizer().vocab_size() <= model->vocab_size(), o.model, ": tokenizer has ",
             tok.tokenizer().vocab_size(), " ids but the model only ", model->vocab_size(), " logits");

  eval::PplOptions popt;
  popt.n_ctx = o.ppl_ctx;
  popt.stride = o.stride;
  popt.max_windows = o.max_windows;
  eval::RunOptions ropt;
  ropt.keep_prompt_text = o.keep_prompts;
  ropt.batch = o.batch;

  LING_CHECK(o.resume.empty() || ctx.store, "ling eval --resume needs the results store (drop --no-db)");
  std::unique_ptr<eval::ResultSink> sink;
  std::string run_id = ctx.run_id;  // where samples and metrics go
  if (ctx.store) {
    Store& st = *ctx.store;
    if (!o.resume.empty()) {
      RunSummary old = st.get_run(o.resume);
      LING_CHECK(old.command == "eval", "ling eval --resume: run ", old.run_id, " is a '", old.command,
                 "' run, not an eval");
      run_id = old.run_id;
      st.set_run_note(ctx.run_id, "resumes run " + run_id);
    } else {
      nlohmann::json settings = {{"tasks", names},        {"contexts", topt.contexts}, {"depths", topt.depths},
                                 {"samples", o.samples},  {"seed", o.seed},          {"backend", o.backend},      {"batch", o.batch},
                                 {"tp", o.tp},            {"ep", o.ep},
                                 {"shots", o.shots},      {"max_new_tokens", o.max_new_tokens},
                                 {"ppl_ctx", o.ppl_ctx},  {"stride", o.stride},        {"max_windows", o.max_windows},
                                 {"text", {{"name", text_name}, {"sha256", eval::sha256_hex(text)}}}};
      if (!topt.data_path.empty()) settings["data"] = topt.data_path;
      st.set_run_settings(run_id, settings.dump());
      st.set_run_seed(run_id, int64_t(o.seed));
      int64_t model_id = st.upsert_model(eval::describe_model(o.model));
      std::optional<int64_t> ref_id;
      if (!o.reference.empty()) ref_id = st.upsert_model(eval::describe_model(o.reference));
      st.set_run_model(run_id, model_id, ref_id);
      DeviceRecord dev = this_cpu_device();
      if (o.backend == "cuda") dev.kind = "gpu", dev.name = model->device();
      st.set_run_device(run_id, dev);
    }
    auto store_sink = std::make_unique<eval::StoreSink>(st, run_id);
    // Task names by task_id in the run's settings as soon as a task starts, so `ling results` can name the
    // metrics and samples of an interrupted run too.
    store_sink->on_begin = [&st, run_id](const eval::TaskInfo& t, int64_t id) {
      nlohmann::json settings = nlohmann::json::object();
      try {
        settings = nlohmann::json::parse(st.get_run(run_id).settings_json);
      } catch (const std::exception&) {
      }
      if (!settings.is_object()) settings = nlohmann::json::object();
      settings["task_ids"][std::to_string(id)] = t.name;
      st.set_run_settings(run_id, settings.dump());
    };
    sink = std::move(store_sink);
    if (!run_id.empty()) std::cerr << "ling eval: run " << run_id << "\n";
  } else {
    sink = std::make_unique<eval::MemorySink>();
  }
  nlohmann::json all = nlohmann::json::array();
  for (const auto& name : names) {
    std::vector<eval::MetricRecord> metrics;
    if (name == "ppl" || name == "kld") {
      if (name == "kld" && !ref) ref = eval::open_engine_model(o.reference, o.backend, o.ppl_ctx);
      auto info = eval::text_task_info(name == "kld", text, text_name, popt, tok.bos().has_value());
      metrics = eval::run_text_task(info, text, tok, *model, name == "kld" ? ref.get() : nullptr, popt, *sink, ropt);
    } else {
      auto task = eval::make_task(name, topt);
      metrics = eval::run_task(*task, tok, static_cast<eval::BatchedLogits&>(*model), *sink, ropt);
    }
    if (o.json) {
      for (const auto& m : metrics)
        all.push_back({{"task", name}, {"name", m.name}, {"bucket", m.bucket}, {"value", m.value},
                       {"stderr", m.stderr_ >= 0 ? nlohmann::json(m.stderr_) : nlohmann::json()}, {"n", m.n},
                       {"higher_is_better", m.higher_is_better}});
    } else {
      std::cout << eval::format_metrics(name, metrics);
    }
  }
  if (o.json) std::cout << all.dump(2) << "\n";
  if (ctx.store && run_id != ctx.run_id) ctx.store->end_run(run_id, "ok", 0);  // the resumed run is complete
  return 0;
}

}  // namespace

Command register_eval(CLI::App& app) {
  auto opt = std::make_shared<EvalOptions>();
  Command c;
  c.app = app.add_subcommand("eval", "Evaluate a model: long-context tasks, reasoning, perplexity, KL divergence");
  auto* a = c.app;
  a->add_option("model", opt->model, "Model folder (config.json, safetensors, tokenizer.json)")->required();
  a->add_option("--task,-t", opt->tasks,
                "Comma-separated: passkey, niah_single_1..3, niah_multikey_1..3, niah_multivalue, niah_multiquery, "
                "vt, cwe, fwe, arith, gsm8k, ppl, kld")
      ->required();
  a->add_option("--contexts", opt->contexts, "Prompt lengths in tokens, e.g. 1K,4K (exact, BOS included)");
  a->add_option("--depths", opt->depths, "Needle depths in percent, e.g. 0,50,100");
  a->add_option("--samples,-n", opt->samples, "Samples per (context, depth) cell, or problems for arith/gsm8k");
  a->add_option("--seed", opt->seed, "Generator seed");
  a->add_option("--data", opt->data, "gsm8k: JSONL file; ppl/kld/essay haystacks: a text file (default built-in)");
  a->add_option("--reference", opt->reference, "kld: reference model folder (same tokenizer)");
  a->add_option("--backend", opt->backend, "cpu | cuda");
  a->add_option("--tp", opt->tp, "Tensor-parallel ranks of the evaluated model")->check(CLI::PositiveNumber);
  a->add_option("--ep", opt->ep, "Expert-parallel rank groups (divides --tp)")->check(CLI::PositiveNumber);
  a->add_option("--resume", opt->resume, "Continue run RUN_ID: stored samples are not recomputed");
  a->add_option("--shots", opt->shots, "arith/gsm8k: solved examples before each question");
  a->add_option("--max-new-tokens", opt->max_new_tokens, "Override the task's generation length");
  a->add_option("--ctx", opt->ppl_ctx, "ppl/kld: window length in tokens");
  a->add_option("--stride", opt->stride, "ppl/kld: 0 = disjoint windows, else HF sliding-window stride");
  a->add_option("--max-windows", opt->max_windows, "ppl/kld: score at most this many windows (0 = all)");
  a->add_option("--batch", opt->batch, "Samples generated together (engine batching)");
  a->add_flag("--keep-prompts", opt->keep_prompts, "Store the decoded prompt text with each sample");
  a->add_flag("--json", opt->json, "Print the metrics as JSON");
  c.run = [opt](Context& ctx) { return run_eval(*opt, ctx); };
  return c;
}

}  // namespace ling
