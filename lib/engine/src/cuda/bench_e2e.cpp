// End-to-end engine benchmark on the CUDA backend (bench_cuda.h): prefill and decode through Engine, with the
// decode step's bandwidth roofline counted from the model's shapes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/engine/bench_cuda.h"
#include "ling/engine/engine.h"
#include "ling/model/accounting.h"
#include "ling/model/schema.h"

namespace ling {

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Projection weights one decode step of `batch` tokens reads, in parameters: everything but the routed
// experts, plus per MoE layer the expected distinct experts of batch·k uniform picks.
double decode_weight_params(const ModelConfig& c, int64_t batch) {
  double params = 0;
  for (const TensorSpec& s : tensor_schema(c, false)) {
    if (s.name == "model.word_embeddings.weight" || s.name.find(".experts.") != std::string::npos) continue;
    double n = 1;
    for (int64_t d : s.shape) n *= double(d);
    params += n;
  }
  const LayerCounts lc = count_layers(c);
  if (c.num_experts > 0) {
    const double E = double(c.num_experts), picks = double(batch * c.num_experts_per_tok);
    const double distinct = E * (1.0 - std::pow(1.0 - 1.0 / E, picks));
    params += double(lc.moe_ffn) * distinct * 3.0 * double(c.hidden_size * c.moe_intermediate_size);
  }
  return params;
}

}  // namespace

std::vector<CudaBenchRow> run_e2e_bench(const CudaBenchOptions& o, double copy_gbps) {
  EngineOptions eo;
  eo.backend = "cuda";
  const double t_open = now_ms();
  auto eng = Engine::open(o.model, eo);
  const double open_ms = now_ms() - t_open;
  const ModelConfig& c = eng->config();
  std::vector<CudaBenchRow> rows;
  {  // the load (checkpoint read, checked, converted and uploaded): first, and on stderr at once
    CudaBenchRow r;
    r.op = "engine.load";
    r.ms = r.ms_min = r.ms_max = open_ms;
    r.samples_ms = {open_ms};
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(o.model, ec))
      if (e.path().extension() == ".safetensors") r.bytes += double(e.file_size(ec));
    r.gbps = r.bytes / (open_ms * 1e-3) / 1e9;
    r.shape = "checkpoint files, read to the device";
    log_info("ling bench: ", o.model, " loaded in ", open_ms / 1e3, " s");
    rows.push_back(r);
  }
  std::mt19937 rng(uint32_t(o.seed));
  auto ids = [&](int64_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = int32_t(rng() % uint32_t(c.vocab_size));
    return v;
  };
  const size_t first_prefill = rows.size();
  for (int64_t T : o.e2e_prefill) {
    LING_CHECK(T <= c.max_position_embeddings, "--prefill ", T, " exceeds max_position_embeddings ",
               c.max_position_embeddings);
    auto warm = eng->new_sequence();
    eng->prefill(*warm, ids(std::min<int64_t>(T, 64)));
    CudaBenchRow r;
    r.op = "engine.prefill";
    r.T = T;
    r.batch = 1;
    r.shape = "T=" + std::to_string(T) + " B=1";
    auto seq = eng->new_sequence();
    const auto prompt = ids(T);
    const double t0 = now_ms();
    eng->prefill(*seq, prompt);  // returns host logits: the device work is complete
    r.ms = r.ms_min = r.ms_max = now_ms() - t0;
    r.samples_ms = {r.ms};
    r.flops = flops_per_token(c, T).prefill * double(T);
    r.tflops = r.flops / (r.ms * 1e-3) / 1e12;
    // Time per token, and its ratio to the first (shortest) prefill row: long prompts run in pieces of
    // Engine::prefill_chunk() tokens, so the ratio shows what attention over the longer cache costs.
    const double us_tok = 1e3 * r.ms / double(T);
    char buf[96];
    std::snprintf(buf, sizeof buf, ", %.2f us/token", us_tok);
    r.shape += buf;
    if (rows.size() > first_prefill) {
      const CudaBenchRow& f = rows[first_prefill];
      std::snprintf(buf, sizeof buf, " (%.2fx T=%lld)", us_tok / (1e3 * f.ms / double(f.T)),
                    static_cast<long long>(f.T));
      r.shape += buf;
    }
    rows.push_back(r);
  }
  CacheDtypes dt;
  const double wbytes = 2.0;  // bf16 projections (the backend's "auto" for bf16 checkpoints)
  for (const int64_t C : o.e2e_contexts)
  for (int64_t B : o.e2e_batch) {
    LING_CHECK(C >= 1 && C + o.e2e_steps + 1 <= c.max_position_embeddings, "--context ", C, " + ", o.e2e_steps + 1,
               " decode steps exceeds max_position_embeddings ", c.max_position_embeddings);
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<Sequence*> ptrs;
    for (int64_t b = 0; b < B; ++b) {  // one prompt at a time: long prompts go through the engine's prefill pieces
      seqs.push_back(eng->new_sequence());
      ptrs.push_back(seqs.back().get());
      eng->prefill(*seqs.back(), ids(C));
    }
    std::vector<int32_t> next(size_t(B), 1);
    // A step = one token per sequence in, the greedy next tokens out (picked on the device: only the ids come
    // back). The fed tokens are random, so every step runs the same shapes whatever the weights predict.
    std::vector<uint64_t> states(static_cast<size_t>(B), 0);
    std::vector<Engine::Choice> greedy(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) greedy[size_t(b)].rng = &states[size_t(b)];
    auto step = [&] {
      std::vector<std::vector<int32_t>> feed(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) feed[size_t(b)] = {next[size_t(b)]};
      eng->forward_pick(ptrs, feed, greedy);
    };
    step();  // warm-up step
    CudaBenchRow r;
    r.op = "engine.decode";
    r.T = C;
    r.batch = B;
    r.shape = "B=" + std::to_string(B) + " ctx=" + std::to_string(C);
    for (int64_t s = 0; s < o.e2e_steps; ++s) {
      for (auto& x : next) x = int32_t(rng() % uint32_t(c.vocab_size));
      const double t0 = now_ms();
      step();
      r.samples_ms.push_back(now_ms() - t0);
    }
    std::vector<double> v = r.samples_ms;
    std::sort(v.begin(), v.end());
    r.ms = v[v.size() / 2];
    r.ms_min = v.front();
    r.ms_max = v.back();
    r.bytes = decode_weight_params(c, B) * wbytes +
              double(B) * (double(C) * double(kv_cache_bytes_per_token(c, dt)) +
                           2.0 * double(linear_state_bytes_per_sequence(c, dt)));
    r.gbps = r.bytes / (r.ms * 1e-3) / 1e9;
    r.flops = 2.0 * decode_weight_params(c, B) * double(B);
    r.tflops = r.flops / (r.ms * 1e-3) / 1e12;
    r.ceiling_pct = copy_gbps > 0 ? 100.0 * r.gbps / copy_gbps : 0.0;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace ling
