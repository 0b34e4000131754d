// `ling bench`: performance against a ceiling measured in the same run (performance.md §6).
// --backend cpu: prefill and decode tokens/s through the engine, and every prefill GEMM shape through the
// engine's path beside bare sgemm of the same BLAS (lib/engine bench_cpu.h). Rows go to the results store's
// perf table. --backend cuda: kernel and end-to-end GPU benchmarks are not available in this build yet.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/core/table.h"
#include "ling/engine/bench_cpu.h"
#include "ling/store/store.h"

namespace ling {

namespace {

struct BenchOptions {
  std::string model;
  std::string backend = "cpu";
  std::vector<int64_t> prefill{128, 512};
  std::vector<int64_t> batch{1, 4};
  int64_t steps = 16;
  int reps = 3;
  int threads = 0;
  bool json = false;
};

std::string f(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

void store_report(Store& st, const std::string& run_id, const CpuBenchReport& r) {
  for (const auto& p : r.prefill) {
    PerfRow row;
    row.run_id = run_id;
    row.phase = "prefill";
    row.op = "engine.prefill";
    row.shape_json = nlohmann::json{{"tokens", p.tokens}}.dump();
    row.n_tokens = p.tokens;
    row.batch = 1;
    row.reps = 1;
    row.median_ns = int64_t(p.ms * 1e6);
    row.flops = int64_t(p.gemm_flops);
    row.tokens_per_s = p.tokens_per_s;
    row.ceiling_pct = 100.0 * p.gemm_ratio;  // GEMM time at sgemm rates / engine GEMM time
    st.add_perf(row);
    for (const auto& g : p.shapes) {
      PerfRow k;
      k.run_id = run_id;
      k.phase = "kernel";
      k.op = "gemm." + g.op;
      k.shape_json = nlohmann::json{{"M", g.M}, {"N", g.N}, {"K", g.K}, {"count", g.count}}.dump();
      k.n_tokens = p.tokens;
      k.median_ns = int64_t(g.engine_ms * 1e6);
      k.flops = 2 * g.M * g.N * g.K;
      k.bytes = 4 * (g.M * g.K + g.N * g.K + g.M * g.N);
      k.tflops = g.engine_gflops / 1e3;
      k.gbps = double(k.bytes) / (g.engine_ms * 1e6);
      k.ceiling_pct = 100.0 * g.ratio();
      st.add_perf(k);
    }
  }
  for (const auto& d : r.decode) {
    PerfRow row;
    row.run_id = run_id;
    row.phase = "decode";
    row.op = "engine.decode";
    row.batch = d.batch;
    row.ctx = d.context;
    row.reps = d.steps;
    row.median_ns = int64_t(d.ms_per_step * 1e6);
    row.tokens_per_s = d.tokens_per_s;
    st.add_perf(row);
  }
}

int run_bench(const BenchOptions& o, Context& ctx) {
  if (o.backend == "cuda")
    LING_THROW("ling bench --backend cuda: the GPU benchmarks are not part of this build yet");
  LING_CHECK(o.backend == "cpu", "--backend: '", o.backend, "' is not cpu or cuda");
  CpuBenchOptions co;
  co.model = o.model;
  co.prefill_tokens = o.prefill;
  co.decode_batch = o.batch;
  co.decode_steps = o.steps;
  co.reps = o.reps;
  co.threads = o.threads;
  CpuBenchReport r = run_cpu_bench(co);
  if (ctx.store) {
    ctx.store->set_run_settings(ctx.run_id, nlohmann::json{{"backend", "cpu"}, {"model", o.model}, {"threads", r.threads},
                                                            {"prefill", o.prefill}, {"batch", o.batch}, {"steps", o.steps},
                                                            {"reps", o.reps}}.dump());
    store_report(*ctx.store, ctx.run_id, r);
  }
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = r.model;
    j["threads"] = r.threads;
    for (const auto& p : r.prefill) {
      nlohmann::ordered_json shapes = nlohmann::ordered_json::array();
      for (const auto& g : p.shapes)
        shapes.push_back({{"op", g.op}, {"M", g.M}, {"N", g.N}, {"K", g.K}, {"count", g.count},
                          {"engine_ms", g.engine_ms}, {"sgemm_ms", g.sgemm_ms}, {"engine_gflops", g.engine_gflops},
                          {"sgemm_gflops", g.sgemm_gflops}, {"ratio", g.ratio()}});
      j["prefill"].push_back({{"tokens", p.tokens}, {"ms", p.ms}, {"tokens_per_s", p.tokens_per_s},
                              {"gemm_gflop", p.gemm_flops / 1e9}, {"gemm_engine_ms", p.gemm_engine_ms},
                              {"gemm_sgemm_ms", p.gemm_sgemm_ms}, {"gemm_ratio", p.gemm_ratio},
                              {"gemm_share", p.gemm_share}, {"shapes", shapes}});
    }
    for (const auto& d : r.decode)
      j["decode"].push_back({{"batch", d.batch}, {"context", d.context}, {"steps", d.steps},
                             {"ms_per_step", d.ms_per_step}, {"tokens_per_s", d.tokens_per_s}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "model " << r.model << ", CPU backend, " << r.threads << " BLAS threads\n\n";
  Table t({"prefill tokens", "ms", "tok/s", "GEMM GFLOP", "GEMM GFLOP/s", "sgemm GFLOP/s", "% of sgemm", "GEMM share"});
  for (const auto& p : r.prefill)
    t.row({std::to_string(p.tokens), f(p.ms, 1), f(p.tokens_per_s, 1), f(p.gemm_flops / 1e9, 2),
           f(p.gemm_flops / (p.gemm_engine_ms * 1e6), 1), f(p.gemm_flops / (p.gemm_sgemm_ms * 1e6), 1),
           f(100.0 * p.gemm_ratio, 1), f(100.0 * p.gemm_share, 1) + "%"});
  t.print(std::cout);
  std::cout << "\n";
  Table d({"decode batch", "context", "ms/step", "tok/s"});
  for (const auto& x : r.decode)
    d.row({std::to_string(x.batch), std::to_string(x.context), f(x.ms_per_step, 2), f(x.tokens_per_s, 1)});
  d.print(std::cout);
  if (!r.prefill.empty()) {
    const auto& p = r.prefill.back();
    std::cout << "\nGEMM shapes of the " << p.tokens << "-token prefill (engine path vs bare sgemm, same run)\n";
    Table g({"op", "M", "N", "K", "calls", "engine GFLOP/s", "sgemm GFLOP/s", "% of sgemm"});
    for (const auto& s : p.shapes)
      g.row({s.op, std::to_string(s.M), std::to_string(s.N), std::to_string(s.K), std::to_string(s.count),
             f(s.engine_gflops, 1), f(s.sgemm_gflops, 1), f(100.0 * s.ratio(), 1)});
    g.print(std::cout);
  }
  return 0;
}

}  // namespace

Command register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  Command c;
  c.app = app.add_subcommand("bench", "Benchmarks against ceilings measured in the same run");
  c.app->add_option("model", o->model, "Model folder (e.g. from ling synth --preset small)")->required();
  c.app->add_option("--backend", o->backend, "cpu | cuda");
  c.app->add_option("--prefill", o->prefill, "Prompt lengths, e.g. 128,512")->delimiter(',');
  c.app->add_option("--batch", o->batch, "Decode batch sizes, e.g. 1,4")->delimiter(',');
  c.app->add_option("--steps", o->steps, "Decode steps per measurement");
  c.app->add_option("--reps", o->reps, "Timed repetitions (median) after one warm-up");
  c.app->add_option("--threads", o->threads, "CPU threads (0 = library default)");
  c.app->add_flag("--json", o->json, "JSON report on stdout");
  c.run = [o](Context& ctx) { return run_bench(*o, ctx); };
  return c;
}

}  // namespace ling
