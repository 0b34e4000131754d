// Task and text runners (runner.h): generate / score / store each missing sample, then recompute metrics
// from every stored sample so that resumed and uninterrupted runs agree.
#include "ling/eval/runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ling/core/error.h"
#include "ling/eval/progress.h"
#include "ling/eval/scoring.h"
#include "ling/eval/util.h"

namespace ling::eval {
namespace {

std::string fmt_depth(double d) {
  double r = std::round(d);
  return std::fabs(d - r) < 1e-9 ? std::to_string(static_cast<int64_t>(r)) : cat(d);
}

struct Acc {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double v) { sum += v, sum2 += v * v, ++n; }
  MetricRecord metric(const std::string& name, const std::string& bucket, const std::string& filter) const {
    MetricRecord m;
    m.name = name;
    m.bucket = bucket;
    m.n = n;
    m.filter = filter;
    m.value = n ? sum / double(n) : 0;
    if (n > 1) {
      double var = std::max(0.0, (sum2 - sum * sum / double(n)) / double(n - 1));
      m.stderr_ = std::sqrt(var / double(n));
    }
    return m;
  }
};

}  // namespace

std::vector<MetricRecord> task_metrics(const TaskInfo& info, const std::vector<SampleRecord>& samples) {
  // name -> bucket -> accumulator (values in percent).
  std::map<std::pair<std::string, std::string>, Acc> acc;
  std::map<std::string, std::string> filter_of;
  for (const auto& s : samples) {
    std::vector<std::string> buckets = {""};
    if (s.context_tokens > 0) {
      buckets.push_back(cat("ctx=", s.context_tokens));
      if (s.depth_pct >= 0) buckets.push_back(cat("ctx=", s.context_tokens, ",depth=", fmt_depth(s.depth_pct)));
    }
    std::vector<std::pair<std::string, double>> values;
    if (info.metric == MetricKind::Gsm8k) {
      double flex = 0;
      try {
        auto j = nlohmann::json::parse(s.extra_json);
        flex = j.value("flexible", 0.0);
      } catch (const std::exception&) {
        LING_THROW("task ", info.name, ": sample ", s.idx, " has unreadable extra_json");
      }
      values = {{"exact_match_strict", 100 * s.score}, {"exact_match_flexible", 100 * flex}};
      filter_of["exact_match_strict"] = "strict-match";
      filter_of["exact_match_flexible"] = "flexible-extract";
    } else {
      values = {{"score", 100 * s.score}};
    }
    for (auto& [name, v] : values)
      for (auto& b : buckets) acc[{name, b}].add(v);
  }
  std::vector<MetricRecord> out;
  for (auto& [key, a] : acc) out.push_back(a.metric(key.first, key.second, filter_of[key.first]));
  // RULER effective length: the longest context such that it and every shorter one score above 85.6
  // (Llama-2-7B at 4K); 0 when the shortest already fails.
  std::map<int64_t, double> by_ctx;
  for (const auto& m : out)
    if (m.name == "score" && m.bucket.rfind("ctx=", 0) == 0 && m.bucket.find(',') == std::string::npos)
      by_ctx[std::stoll(m.bucket.substr(4))] = m.value;
  if (!by_ctx.empty() && info.metric != MetricKind::Gsm8k) {
    MetricRecord e;
    e.name = "effective_length";
    e.aggregation = "threshold 85.6";
    e.n = static_cast<int64_t>(by_ctx.size());
    for (auto& [c, v] : by_ctx) {
      if (v <= 85.6) break;
      e.value = static_cast<double>(c);
    }
    out.push_back(e);
  }
  return out;
}

std::vector<MetricRecord> run_task(const Task& task, const TokenizerLike& tok, LogitsSource& model,
                                   ResultSink& sink, const RunOptions& opt) {
  SingleSlot one(model);
  return run_task(task, tok, one, sink, opt);
}

std::vector<MetricRecord> run_task(const Task& task, const TokenizerLike& tok, BatchedLogits& model,
                                   ResultSink& sink, const RunOptions& opt) {
  const TaskInfo& info = task.info();
  sink.begin_task(info);
  std::vector<SampleRecord> all = sink.stored_samples();
  std::set<int64_t> have;
  for (const auto& s : all) have.insert(s.idx);
  const int64_t n = task.size();
  const size_t batch = static_cast<size_t>(std::max(1, std::min(opt.batch, model.max_batch())));
  Progress bar(info.name, n, opt.progress);
  bar.advance(static_cast<int64_t>(have.size()), 0);
  std::vector<int64_t> todo;
  for (int64_t i = 0; i < n; ++i)
    if (!have.count(i)) todo.push_back(i);
  for (size_t b0 = 0; b0 < todo.size(); b0 += batch) {
    std::vector<TaskSample> smps;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<GenerateOptions> gopts;
    for (size_t k = b0; k < std::min(todo.size(), b0 + batch); ++k) {
      smps.push_back(task.make(todo[k], tok));
      const TaskSample& smp = smps.back();
      LING_CHECK(smp.context_tokens <= 0 || static_cast<int64_t>(smp.prompt.size()) == smp.context_tokens,
                 "internal error: task ", info.name, " sample ", smp.idx, " has ", smp.prompt.size(),
                 " tokens, wanted ", smp.context_tokens);
      prompts.push_back(smp.prompt);
      GenerateOptions g;
      g.max_new_tokens = smp.max_new_tokens;
      g.stop = smp.stop;
      gopts.push_back(g);
    }
    std::vector<Generation> outs = generate_greedy_batch(model, tok, prompts, gopts);
    for (size_t k = 0; k < smps.size(); ++k) {
      const TaskSample& smp = smps[k];
      const Generation& out = outs[k];
      SampleScore sc = score_sample(info.metric, out.text, smp.targets);
      SampleRecord r;
      r.idx = smp.idx;
      r.seed = smp.seed;
      r.context_tokens = smp.context_tokens;
      r.depth_pct = smp.depth_pct;
      r.prompt_sha256 = sha256_ids(smp.prompt);
      if (opt.keep_prompt_text) r.prompt_text = tok.decode(smp.prompt);
      r.target_json = nlohmann::json(smp.targets).dump();
      r.output_text = out.text;
      r.output_ids = out.ids;
      r.n_prompt_tokens = static_cast<int64_t>(smp.prompt.size());
      r.n_gen_tokens = static_cast<int64_t>(out.ids.size());
      r.score = sc.score;
      r.correct = sc.correct;
      r.prefill_ms = out.prefill_ms;
      r.decode_ms = out.decode_ms;
      nlohmann::json extra = {{"extracted", sc.extracted}, {"batch", smps.size()}};
      if (info.metric == MetricKind::Gsm8k) extra["flexible"] = sc.flexible;
      r.extra_json = extra.dump();
      sink.put_sample(r);
      all.push_back(r);
      bar.advance(1, r.n_prompt_tokens + r.n_gen_tokens);
    }
  }
  bar.finish();
  auto metrics = task_metrics(info, all);
  for (const auto& m : metrics) sink.put_metric(m);
  return metrics;
}

TaskInfo text_task_info(bool kld, const std::string& text, const std::string& text_name, const PplOptions& opt,
                        bool has_bos) {
  TaskInfo t;
  t.name = kld ? "kld" : "ppl";
  t.family = t.name;
  t.generator_version = "1";
  t.corpus_sha256 = sha256_hex(text);
  t.metric = MetricKind::StringMatchAll;  // unused for text tasks
  t.params_json = nlohmann::json{{"n_ctx", opt.n_ctx},
                                 {"stride", opt.stride},
                                 {"mode", opt.stride == 0 ? "disjoint" : "sliding"},
                                 {"bos", has_bos},
                                 {"max_windows", opt.max_windows},
                                 {"corpus", {{"name", text_name}, {"sha256", t.corpus_sha256}, {"bytes", text.size()}}}}
                      .dump();
  return t;
}

namespace {

WindowResult window_from_json(const SampleRecord& s) {
  WindowResult w;
  try {
    auto j = nlohmann::json::parse(s.extra_json);
    w.n_bytes = j.at("n_bytes").get<int64_t>();
    w.nll = j.at("nll").get<std::vector<float>>();
    if (j.contains("kld")) {
      w.nll_ref = j.at("nll_ref").get<std::vector<float>>();
      w.kld = j.at("kld").get<std::vector<float>>();
      w.dp = j.at("dp").get<std::vector<float>>();
      w.same_top = j.at("same_top").get<std::vector<uint8_t>>();
    }
  } catch (const std::exception& e) {
    LING_THROW("stored window ", s.idx, " cannot be read back (", e.what(), ")");
  }
  return w;
}

}  // namespace

std::vector<MetricRecord> run_text_task(const TaskInfo& info, const std::string& text, const TokenizerLike& tok,
                                        LogitsSource& model, LogitsSource* ref, const PplOptions& opt,
                                        ResultSink& sink, const RunOptions& run) {
  sink.begin_task(info);
  std::vector<int32_t> tokens = tok.encode(text);
  std::vector<Window> windows = plan_windows(static_cast<int64_t>(tokens.size()), opt, tok.bos().has_value());
  std::map<int64_t, WindowResult> done;
  for (const auto& s : sink.stored_samples()) done[s.idx] = window_from_json(s);
  Progress bar(info.name, static_cast<int64_t>(windows.size()), run.progress);
  bar.advance(static_cast<int64_t>(done.size()), 0);
  for (size_t i = 0; i < windows.size(); ++i) {
    if (done.count(int64_t(i))) continue;
    const Window& w = windows[i];
    WindowResult r = score_window(model, ref, tok, tokens, w, opt.block);
    SampleRecord s;
    s.idx = static_cast<int64_t>(i);
    s.context_tokens = w.end - w.begin;
    s.prompt_sha256 = sha256_ids(std::span<const int32_t>(tokens.data() + w.begin, size_t(w.end - w.begin)));
    s.n_prompt_tokens = w.end - w.begin + (tok.bos() ? 1 : 0);
    double sum = 0;
    for (float v : r.nll) sum += v;
    s.score = r.nll.empty() ? 0 : sum / double(r.nll.size());
    nlohmann::json extra = {{"begin", w.begin}, {"end", w.end}, {"first_scored", w.first_scored},
                            {"n_bytes", r.n_bytes}, {"nll", r.nll}};
    if (ref) extra.update({{"nll_ref", r.nll_ref}, {"kld", r.kld}, {"dp", r.dp}, {"same_top", r.same_top}});
    s.extra_json = extra.dump();
    sink.put_sample(s);
    // Keep exactly what was stored (float precision) so a resumed run computes identical metrics.
    done[s.idx] = std::move(r);
    bar.advance(1, s.n_prompt_tokens * (ref ? 2 : 1));
  }
  bar.finish();
  std::vector<WindowResult> all;
  for (auto& [i, w] : done) all.push_back(std::move(w));
  std::vector<MetricRecord> out;
  for (const auto& st : ref ? summarize_kld(all) : summarize_ppl(all)) {
    MetricRecord m;
    m.name = st.name;
    m.value = st.value;
    m.stderr_ = st.stderr_;
    m.n = st.n;
    m.higher_is_better = st.higher_is_better;
    out.push_back(m);
  }
  if (ref) {
    int64_t n_tok = 0;
    for (const auto& w : all) n_tok += static_cast<int64_t>(w.kld.size());
    for (const auto& [bin, frac] : kld_histogram(all)) {
      MetricRecord m;
      m.n = n_tok;
      m.name = "kld_hist";
      m.bucket = "bin=" + bin;
      m.value = frac;
      m.aggregation = "fraction";
      m.higher_is_better = false;
      out.push_back(m);
    }
  }
  for (const auto& m : out) sink.put_metric(m);
  return out;
}

}  // namespace ling::eval

namespace ling::eval {

void MemorySink::begin_task(const TaskInfo& task) {
  for (auto& e : entries)
    if (e.task.name == task.name && e.task.params_json == task.params_json) {
      std::swap(e, entries.back());
      return;
    }
  entries.push_back({task, {}, {}});
}

std::vector<SampleRecord> MemorySink::stored_samples() {
  LING_CHECK(!entries.empty(), "internal error: MemorySink used before begin_task");
  return entries.back().samples;
}

void MemorySink::put_sample(const SampleRecord& s) {
  LING_CHECK(!entries.empty(), "internal error: MemorySink used before begin_task");
  entries.back().samples.push_back(s);
}

void MemorySink::put_metric(const MetricRecord& m) {
  LING_CHECK(!entries.empty(), "internal error: MemorySink used before begin_task");
  entries.back().metrics.push_back(m);
}

std::string format_metrics(const std::string& task, const std::vector<MetricRecord>& metrics) {
  std::string out;
  char line[256];
  for (const auto& m : metrics) {
    char pm[48] = "";
    if (m.stderr_ >= 0) std::snprintf(pm, sizeof pm, " ± %.3g", m.stderr_);
    std::snprintf(line, sizeof line, "%-16s %-22s %-24s %12.6g%s  (n=%lld)\n", task.c_str(), m.name.c_str(),
                  m.bucket.empty() ? "-" : m.bucket.c_str(), m.value, pm, static_cast<long long>(m.n));
    out += line;
  }
  return out;
}

}  // namespace ling::eval
