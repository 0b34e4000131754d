// CPU benchmark (bench_cpu.h): end-to-end prefill/decode through the engine, and the prefill's GEMM shapes
// through ref::linear (the engine's path) beside bare cblas_sgemm on the same shapes in the same run.
#include "ling/engine/bench_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <tuple>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/engine/engine.h"
#include "ling/engine/weights.h"
#include "ling/ref/ops.h"

namespace ling {

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double median_ms(int reps, F&& body) {
  body();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < std::max(1, reps); ++r) {
    auto t0 = Clock::now();
    body();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<float> random_vec(size_t n, std::mt19937& g) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}

struct Shape {
  std::string op;
  const Mat* w;  // the model's weight (engine path)
  int64_t M;
};

// The GEMMs of one prefill of `T` tokens, per layer kind (lm_head excluded).
std::vector<Shape> prefill_gemms(const ModelConfig& c, const ModelWeights& w, int64_t T) {
  std::vector<Shape> out;
  for (const LayerWeights& l : w.layers) {
    switch (l.spec.attn) {
      case AttnKind::GQA: out.push_back({"attn.qkv", &l.qkv, T}); break;
      case AttnKind::Lightning:
        out.push_back({"attn.qkv", &l.qkv, T});
        out.push_back({"lightning.g_proj", &l.g_proj, T});
        break;
      case AttnKind::MLA:
        if (!l.q_a.empty()) {
          out.push_back({"mla.q_a", &l.q_a, T});
          out.push_back({"mla.q_b", &l.q_b, T});
        } else {
          out.push_back({"mla.q_proj", &l.q_proj, T});
        }
        out.push_back({"mla.kv_a", &l.kv_a, T});
        out.push_back({"mla.kv_b", &l.kv_b, T});
        break;
    }
    out.push_back({"attn.dense", &l.dense, T});
    if (l.spec.ffn == FfnKind::Dense) {
      out.push_back({"ffn.gate_up", &l.gate_up, T});
      out.push_back({"ffn.down", &l.down, T});
    } else {
      out.push_back({"moe.router", &l.router, T});
      const int64_t per_expert = std::max<int64_t>(1, T * c.num_experts_per_tok / std::max<int64_t>(1, c.num_experts));
      for (const ExpertWeights& e : l.experts) {
        out.push_back({"moe.expert.gate_up", &e.gate_up, per_expert});
        out.push_back({"moe.expert.down", &e.down, per_expert});
      }
      if (!l.shared.gate_up.empty()) {
        out.push_back({"moe.shared.gate_up", &l.shared.gate_up, T});
        out.push_back({"moe.shared.down", &l.shared.down, T});
      }
    }
  }
  return out;
}

}  // namespace

CpuBenchReport run_cpu_bench(const CpuBenchOptions& o) {
  CpuBenchReport rep;
  rep.model = o.model;
  EngineOptions eo;
  eo.backend = "cpu";
  eo.backend_options.threads = o.threads;
  auto engine = Engine::open(o.model, eo);
  const ModelConfig& c = engine->config();
  rep.threads = o.threads > 0 ? o.threads : openblas_get_num_threads();
  std::mt19937 gen(uint32_t(o.seed));
  std::uniform_int_distribution<int32_t> tok(0, int32_t(c.vocab_size - 1));
  auto random_ids = [&](int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& t : ids) t = tok(gen);
    return ids;
  };

  // The engine keeps its weights private; load a host copy of the same checkpoint for the GEMM shapes.
  Checkpoint ck = Checkpoint::open(o.model);
  const ModelWeights weights = load_weights(c, ck);

  for (int64_t T : o.prefill_tokens) {
    LING_CHECK(T > 0 && T <= c.max_position_embeddings, "bench: prefill length ", T, " out of range");
    PrefillResult pr;
    pr.tokens = T;
    const auto ids = random_ids(T);
    pr.ms = median_ms(o.reps, [&] {
      auto seq = engine->new_sequence();
      engine->prefill(*seq, ids);
    });
    pr.tokens_per_s = double(T) / (pr.ms / 1e3);

    // Distinct shapes (op, M, N, K) with their call counts; each timed once per rep.
    std::map<std::tuple<std::string, int64_t, int64_t, int64_t>, std::pair<const Mat*, int64_t>> distinct;
    for (const Shape& s : prefill_gemms(c, weights, T)) {
      auto key = std::make_tuple(s.op, s.M, s.w->rows, s.w->cols);
      auto it = distinct.find(key);
      if (it == distinct.end()) distinct[key] = {s.w, 1};
      else ++it->second.second;
    }
    for (const auto& [key, val] : distinct) {
      const auto& [op, M, N, K] = key;
      GemmShapeResult g;
      g.op = op;
      g.M = M;
      g.N = N;
      g.K = K;
      g.count = val.second;
      std::vector<float> x = random_vec(size_t(M * K), gen), y(size_t(M * N));
      ref::LinearParams p;
      p.x = x.data();
      p.w = val.first->data();
      p.y = y.data();
      p.M = M;
      p.N = N;
      p.K = K;
      g.engine_ms = median_ms(o.reps, [&] { ref::linear(p); });
      std::vector<float> a = random_vec(size_t(M * K), gen), b = random_vec(size_t(N * K), gen), cc(size_t(M * N));
      g.sgemm_ms = median_ms(o.reps, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, a.data(), int(K), b.data(),
                    int(K), 0.0f, cc.data(), int(N));
      });
      const double flops = 2.0 * double(M) * double(N) * double(K);
      g.engine_gflops = flops / (g.engine_ms * 1e6);
      g.sgemm_gflops = flops / (g.sgemm_ms * 1e6);
      pr.gemm_flops += flops * double(g.count);
      pr.gemm_engine_ms += g.engine_ms * double(g.count);
      pr.gemm_sgemm_ms += g.sgemm_ms * double(g.count);
      pr.shapes.push_back(g);
    }
    pr.gemm_ratio = pr.gemm_engine_ms > 0 ? pr.gemm_sgemm_ms / pr.gemm_engine_ms : 0;
    pr.gemm_share = pr.ms > 0 ? pr.gemm_engine_ms / pr.ms : 0;
    rep.prefill.push_back(std::move(pr));
  }

  for (int64_t B : o.decode_batch) {
    LING_CHECK(B > 0, "bench: decode batch must be positive");
    DecodeResult d;
    d.batch = B;
    d.steps = o.decode_steps;
    d.context = o.decode_context;
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<Sequence*> ptrs;
    for (int64_t b = 0; b < B; ++b) {
      seqs.push_back(engine->new_sequence());
      engine->prefill(*seqs.back(), random_ids(o.decode_context));
      ptrs.push_back(seqs.back().get());
    }
    std::vector<int32_t> next = random_ids(B);
    // One untimed step, then the timed steps (each a full batched decode).
    engine->decode(ptrs, next);
    auto t0 = Clock::now();
    for (int64_t s = 0; s < o.decode_steps; ++s) engine->decode(ptrs, next);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    d.ms_per_step = ms / double(std::max<int64_t>(1, o.decode_steps));
    d.tokens_per_s = double(B) * 1e3 / d.ms_per_step;
    rep.decode.push_back(d);
  }
  return rep;
}

}  // namespace ling
