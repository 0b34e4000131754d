// `ling bench`: performance against a ceiling measured in the same run (performance.md §6).
// --backend cpu: prefill and decode tokens/s through the engine, and every prefill GEMM shape through the
// engine's path beside bare sgemm of the same BLAS (lib/engine bench_cpu.h). Rows go to the results store's
// perf table. --backend cuda: the GPU kernels (Lightning prefill/decode) beside the copy-bandwidth ceiling measured
// in the same process (lib/engine bench_cuda.h); no model folder needed. --tp N [--ep M]: the tensor/expert-
// parallel scaling table of a model's decode (lib/engine bench_scaling.h), CPU or CUDA ranks.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/core/table.h"
#include "ling/engine/bench_cpu.h"
#include "ling/engine/bench_scaling.h"
#if LING_HAS_CUDA
#include "ling/engine/bench_cuda.h"
#endif
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
  bool prefill_given = false, batch_given = false;  // --prefill / --batch on the command line
  std::vector<int64_t> prefill_blocks{0};            // --backend cuda: Lightning prefill sequence blocks (0 = auto)
  int64_t tp = 0, ep = 1;                            // --tp N: scaling table over TP 1, 2, 4, … N (0 = off)
  std::vector<int64_t> context{256};                 // --tp (first value) and --backend cuda MODEL: cached tokens
                                                     // before the timed decode steps
  bool context_given = false;
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


#if LING_HAS_CUDA
int run_bench_cuda(const BenchOptions& o, Context& ctx) {
  CudaBenchOptions co;
  if (o.prefill_given) co.prefill_tokens = o.prefill;
  if (o.batch_given) co.decode_batch = o.batch;
  co.prefill_blocks = o.prefill_blocks;
  co.reps = std::max(o.reps, 20);
  if (!o.model.empty()) {  // end to end through the engine instead of the kernel benches
    co.model = o.model;
    if (o.prefill_given) co.e2e_prefill = o.prefill;
    if (o.batch_given) co.e2e_batch = o.batch;
    co.e2e_steps = o.steps;
    if (o.context_given) co.e2e_contexts = o.context;
  }
  const CudaBenchReport r = run_cuda_bench(co);
  if (ctx.store) {
    ctx.store->set_run_settings(ctx.run_id, nlohmann::json{{"backend", "cuda"}, {"device", r.device},
                                                            {"prefill", co.prefill_tokens}, {"batch", co.decode_batch},
                                                            {"reps", co.reps}, {"copy_gbps", r.copy_gbps},
                                                            {"switches", r.switches}}.dump());
    for (const auto& x : r.rows) {
      PerfRow row;
      row.run_id = ctx.run_id;
      row.phase = "kernel";  // the copy ceiling is op copy.d2d
      row.op = x.op;
      row.shape_json = nlohmann::json{{"shape", x.shape}, {"T", x.T}, {"nh", x.nh}, {"batch", x.batch}, {"blocks", x.blocks}}.dump();
      row.n_tokens = x.T;
      row.batch = x.batch;
      row.reps = int64_t(x.samples_ms.size());
      row.median_ns = int64_t(x.ms * 1e6);
      row.bytes = int64_t(x.bytes);
      row.flops = int64_t(x.flops);
      row.gbps = x.gbps;
      row.tflops = x.tflops;
      row.ceiling_pct = x.ceiling_pct;
      nlohmann::json samples = nlohmann::json::array();
      for (double ms : x.samples_ms) samples.push_back(int64_t(ms * 1e6));
      row.samples_ns_json = samples.dump();
      ctx.store->add_perf(row);
    }
  }
  if (o.json) {
    nlohmann::ordered_json j;
    j["device"] = r.device;
    j["sms"] = r.sms;
    j["driver_version"] = r.driver_version;
    j["runtime_version"] = r.runtime_version;
    j["copy_gbps"] = r.copy_gbps;
    j["switches"] = r.switches;
    j["rows"] = nlohmann::ordered_json::array();
    for (const auto& x : r.rows)
      j["rows"].push_back({{"op", x.op}, {"shape", x.shape}, {"T", x.T}, {"nh", x.nh}, {"batch", x.batch},
                           {"blocks", x.blocks},
                           {"ms", x.ms}, {"ms_min", x.ms_min}, {"ms_max", x.ms_max}, {"bytes", x.bytes},
                           {"flops", x.flops}, {"gbps", x.gbps}, {"tflops", x.tflops},
                           {"pct_of_copy", x.ceiling_pct}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << r.device << ", driver " << r.driver_version << ", runtime " << r.runtime_version
            << "; ceiling: device-to-device copy " << f(r.copy_gbps, 0) << " GB/s (read + write)\n"
            << "switches: " << (r.switches.empty() ? "the defaults" : r.switches) << "\n\n";
  Table t({"op", "shape", "ms (median)", "min..max", "MB", "GFLOP", "GB/s", "TFLOP/s", "% of copy"});
  for (const auto& x : r.rows)
    t.row({x.op, x.shape, f(x.ms, 4), f(x.ms_min, 4) + ".." + f(x.ms_max, 4), f(x.bytes / 1e6, 1),
           f(x.flops / 1e9, 2), f(x.gbps, x.gbps < 100 ? 2 : 0), f(x.tflops, 1), f(x.ceiling_pct, 1)});
  t.print(std::cout);
  return 0;
}
#endif

int run_bench_scaling(const BenchOptions& o, Context& ctx) {
  LING_CHECK(!o.model.empty(), "ling bench --tp: the model folder argument is required");
  LING_CHECK(o.backend == "cpu" || o.backend == "cuda", "--backend: '", o.backend, "' is not cpu or cuda");
  LING_CHECK(o.context.size() == 1, "ling bench --tp: --context takes one value (", o.context.size(), " given)");
  ScalingOptions so;
  so.model = o.model;
  so.backend = o.backend;
  so.tp = o.tp;
  so.ep = o.ep;
  so.batch = o.batch;
  so.context = o.context.front();
  so.steps = o.steps;
  so.threads = o.threads;
  const std::vector<ScalingRow> rows = run_scaling_bench(so);
  if (ctx.store) {
    ctx.store->set_run_settings(ctx.run_id, nlohmann::json{{"backend", o.backend}, {"model", o.model}, {"tp", o.tp},
                                                            {"ep", o.ep}, {"batch", o.batch}, {"context", o.context.front()},
                                                            {"steps", o.steps}}.dump());
    for (const auto& r : rows) {
      PerfRow row;
      row.run_id = ctx.run_id;
      row.phase = "decode";
      row.op = "engine.decode.tp";
      row.shape_json = nlohmann::json{{"tp", r.tp}, {"ep", r.ep}, {"comm_share", r.comm_share},
                                      {"comm_ms_per_step", r.comm_ms_per_step},
                                      {"all_reduces_per_step", r.all_reduces_per_step}, {"speedup", r.speedup}}.dump();
      row.batch = r.batch;
      row.ctx = r.context;
      row.reps = r.steps;
      row.median_ns = int64_t(r.ms_per_step * 1e6);
      row.tokens_per_s = r.tokens_per_s;
      ctx.store->add_perf(row);
    }
  }
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["backend"] = o.backend;
    j["rows"] = nlohmann::ordered_json::array();
    for (const auto& r : rows)
      j["rows"].push_back({{"tp", r.tp}, {"ep", r.ep}, {"batch", r.batch}, {"context", r.context}, {"steps", r.steps},
                           {"ms_per_step", r.ms_per_step}, {"tokens_per_s", r.tokens_per_s},
                           {"tokens_per_s_per_rank", r.tokens_per_s_per_rank}, {"speedup", r.speedup},
                           {"comm_ms_per_step", r.comm_ms_per_step}, {"comm_share", r.comm_share},
                           {"all_reduces_per_step", r.all_reduces_per_step}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "model " << o.model << ", " << o.backend << " ranks, decode after " << o.context.front()
            << " prompt tokens, median of " << o.steps << " steps\n\n";
  Table t({"tp", "ep", "batch", "ms/step", "tok/s", "tok/s per rank", "speed-up", "all-reduce ms/step",
           "comm share", "all-reduces/step"});
  for (const auto& r : rows)
    t.row({std::to_string(r.tp), std::to_string(r.ep), std::to_string(r.batch), f(r.ms_per_step, 3),
           f(r.tokens_per_s, 1), f(r.tokens_per_s_per_rank, 1), f(r.speedup, 2) + "x", f(r.comm_ms_per_step, 3),
           f(100.0 * r.comm_share, 1) + "%", std::to_string(r.all_reduces_per_step)});
  t.print(std::cout);
  return 0;
}

int run_bench(const BenchOptions& o, Context& ctx) {
  if (o.tp > 0) return run_bench_scaling(o, ctx);
  if (o.backend == "cuda") {
#if LING_HAS_CUDA
    return run_bench_cuda(o, ctx);
#else
    LING_THROW("ling bench --backend cuda: this build has no CUDA support (configure with a CUDA toolkit)");
#endif
  }
  LING_CHECK(o.backend == "cpu", "--backend: '", o.backend, "' is not cpu or cuda");
  LING_CHECK(!o.model.empty(), "ling bench --backend cpu: the model folder argument is required");
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
  c.app->add_option("model", o->model, "Model folder (e.g. from ling synth --preset small); with --backend cuda: end-to-end engine rows");
  c.app->add_option("--backend", o->backend, "cpu | cuda");
  auto* prefill = c.app->add_option("--prefill", o->prefill, "Prompt lengths, e.g. 128,512")->delimiter(',');
  auto* batch = c.app->add_option("--batch", o->batch, "Decode batch sizes, e.g. 1,4")->delimiter(',');
  c.app->add_option("--prefill-blocks", o->prefill_blocks,
                    "--backend cuda: Lightning prefill sequence blocks per head to compare (0 = automatic)")
      ->delimiter(',');
  c.app->add_option("--steps", o->steps, "Decode steps per measurement");
  c.app->add_option("--reps", o->reps, "Timed repetitions (median) after one warm-up");
  c.app->add_option("--threads", o->threads, "CPU threads (0 = library default)");
  c.app->add_flag("--json", o->json, "JSON report on stdout");
  c.app->add_option("--tp", o->tp, "Scaling table of tensor parallelism: TP 1, 2, 4, ... up to this (decode)")
      ->check(CLI::PositiveNumber);
  c.app->add_option("--ep", o->ep, "With --tp: expert-parallel groups of the largest layout (divides --tp)")
      ->check(CLI::PositiveNumber);
  auto* context = c.app->add_option("--context", o->context,
                                    "Cached tokens before the timed decode steps: with --tp one value (default 256); "
                                    "with --backend cuda MODEL a list, e.g. 4096,32768 (default 1024)")
                      ->delimiter(',')
                      ->check(CLI::PositiveNumber);
  c.run = [o, prefill, batch, context](Context& ctx) {
    o->prefill_given = prefill->count() > 0;
    o->batch_given = batch->count() > 0;
    o->context_given = context->count() > 0;
    return run_bench(*o, ctx);
  };
  return c;
}

}  // namespace ling
