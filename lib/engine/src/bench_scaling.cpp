// Scaling benchmark of tensor/expert parallelism (bench_scaling.h): one Engine per layout, B random prompts of
// `context` tokens prefilled together, one warm-up decode step, then `steps` timed steps; the all-reduce time
// comes from the TP backend's counters read before and after the timed steps.
#include "ling/engine/bench_scaling.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "ling/core/error.h"
#include "ling/engine/engine.h"
#include "ling/engine/tensor_parallel.h"

namespace ling {

std::vector<std::pair<int64_t, int64_t>> scaling_layouts(int64_t tp, int64_t ep) {
  LING_CHECK(tp >= 1, "--tp ", tp, " must be at least 1");
  LING_CHECK(ep >= 1 && tp % ep == 0, "--ep ", ep, " must divide --tp ", tp);
  std::vector<std::pair<int64_t, int64_t>> out = {{1, 1}};
  for (int64_t t = 2; t <= tp; t *= 2) {
    const int64_t e = std::min(ep, t);
    out.push_back({t, t % e == 0 ? e : 1});
  }
  if (out.back().first != tp) out.push_back({tp, ep});  // N not a power of two: measure it as given
  return out;
}

std::vector<ScalingRow> run_scaling_bench(const ScalingOptions& o) {
  LING_CHECK(!o.batch.empty() && o.steps >= 1 && o.context >= 1, "ling bench --tp: need batch sizes, --steps >= 1");
  for (int64_t b : o.batch) LING_CHECK(b >= 1, "--batch ", b, " must be at least 1");
  std::vector<ScalingRow> rows;
  std::map<int64_t, double> base_tps;  // batch → tokens/s at TP 1
  for (const auto& [tp, ep] : scaling_layouts(o.tp, o.ep)) {
    EngineOptions eo;
    eo.backend = o.backend;
    eo.tp = tp;
    eo.ep = ep;
    eo.backend_options.threads = o.threads;
    auto eng = Engine::open(o.model, eo);
    const ModelConfig& c = eng->config();
    LING_CHECK(o.context + o.steps + 1 <= c.max_position_embeddings, "--context ", o.context, " + steps exceeds ",
               "max_position_embeddings ", c.max_position_embeddings, " of ", o.model);
    std::mt19937 rng(uint32_t(o.seed));
    for (int64_t B : o.batch) {
      std::vector<std::unique_ptr<Sequence>> seqs;
      std::vector<Sequence*> ptrs;
      std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(B));
      for (auto& p : prompts) {
        p.resize(static_cast<size_t>(o.context));
        for (auto& x : p) x = int32_t(rng() % uint32_t(c.vocab_size));
        seqs.push_back(eng->new_sequence());
        ptrs.push_back(seqs.back().get());
      }
      eng->forward(ptrs, prompts, false);
      std::vector<int32_t> next(static_cast<size_t>(B));
      auto draw = [&] {
        for (auto& x : next) x = int32_t(rng() % uint32_t(c.vocab_size));
      };
      draw();
      eng->decode(ptrs, next);  // warm-up (first-step allocations, graph capture on one GPU)
      const TpCommStats before = tp_comm_stats(eng->backend());
      std::vector<double> ms;
      double total = 0;
      for (int64_t s = 0; s < o.steps; ++s) {
        draw();
        const auto t0 = std::chrono::steady_clock::now();
        eng->decode(ptrs, next);  // returns host logits: the step is complete
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        total += ms.back();
      }
      const TpCommStats after = tp_comm_stats(eng->backend());
      std::sort(ms.begin(), ms.end());
      ScalingRow r;
      r.tp = tp;
      r.ep = ep;
      r.batch = B;
      r.context = o.context;
      r.steps = o.steps;
      r.ms_per_step = ms[ms.size() / 2];
      r.tokens_per_s = 1e3 * double(B) / r.ms_per_step;
      r.tokens_per_s_per_rank = r.tokens_per_s / double(tp);
      r.comm_ms_per_step = 1e3 * (after.seconds - before.seconds) / double(o.steps);
      r.comm_share = r.comm_ms_per_step / (total / double(o.steps));
      r.all_reduces_per_step = (after.calls - before.calls) / o.steps;
      if (tp == 1) base_tps[B] = r.tokens_per_s;
      r.speedup = base_tps.count(B) ? r.tokens_per_s / base_tps[B] : 0.0;
      rows.push_back(r);
    }
  }
  return rows;
}

}  // namespace ling
