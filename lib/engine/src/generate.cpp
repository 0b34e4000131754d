// The fixtures' decode protocol on an Engine, the golden-name collector and the dump writer (generate.h).
#include "ling/engine/generate.h"

#include <chrono>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/engine/rope.h"
#include "ling/ref/ops.h"

namespace ling {
namespace {

// Renames blk.{L}.out → hidden_L, blk.{L}.moe.topk_ids → router_topk_L, blk.{L}.moe.topk_weights →
// router_weight_L, final_norm → final_norm.
class GoldenCollector final : public Observer {
 public:
  explicit GoldenCollector(std::map<std::string, DumpTensor>* out) : out_(out) {}
  bool wants(const std::string& name) const override { return !map(name).empty(); }
  void on_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) override {
    const std::string m = map(name);
    if (m.empty()) return;
    DumpTensor& t = (*out_)[m];
    t.shape = shape;
    t.f32.assign(data, data + count(shape));
  }
  void on_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data) override {
    const std::string m = map(name);
    if (m.empty()) return;
    DumpTensor& t = (*out_)[m];
    t.shape = shape;
    t.is_int = true;
    t.i64.assign(data, data + count(shape));
  }

 private:
  static int64_t count(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  static std::string map(const std::string& name) {
    if (name == "final_norm") return name;
    if (name.rfind("blk.", 0) != 0) return "";
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos) return "";
    const std::string il = name.substr(4, dot - 4), rest = name.substr(dot + 1);
    if (rest == "out") return "hidden_" + il;
    if (rest == "moe.topk_ids") return "router_topk_" + il;
    if (rest == "moe.topk_weights") return "router_weight_" + il;
    return "";
  }
  std::map<std::string, DumpTensor>* out_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateResult generate(Engine& engine, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                        const std::function<void(int64_t)>& on_token) {
  LING_CHECK(!prompt.empty(), "generate: empty prompt");
  LING_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0");
  const int64_t V = engine.config().vocab_size;
  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  r.vocab = V;
  uint64_t rng = o.seed;
  auto pick = [&](const float* logits) {
    ref::SamplingParams sp;
    sp.logits = logits; sp.vocab = V; sp.temperature = o.temperature; sp.top_k = o.top_k; sp.top_p = o.top_p;
    return ref::sample(sp, &rng);
  };
  // The model's constants under the golden names: prompt ids, RoPE inverse frequencies, Lightning log decays.
  {
    const ModelConfig& c = engine.config();
    DumpTensor ids;
    ids.shape = {1, r.prompt_tokens};
    ids.is_int = true;
    ids.i64.assign(prompt.begin(), prompt.end());
    r.constants["input_ids"] = ids;
    DumpTensor freq;
    freq.f32 = ref::rope_freqs(rope_freq_params(c)).inv_freq;
    freq.shape = {int64_t(freq.f32.size())};
    r.constants["rope_inv_freq"] = freq;
    if (c.has_mla()) r.constants["rope_inv_freq_mla"] = freq;  // same init, rotary dim = qk_rope_head_dim
    const std::vector<double> slopes = lightning_slopes(c.num_attention_heads);
    for (const LayerSpec& l : c.layers)
      if (!l.mtp && l.attn == AttnKind::Lightning) {
        DumpTensor g;
        g.f32 = ref::lightning_log_decay(slopes, lightning_decay_factor(c.decay, l.index, c.num_hidden_layers));
        g.shape = {int64_t(g.f32.size())};
        r.constants["lightning_slope_" + std::to_string(l.index)] = g;
      }
  }
  auto seq = engine.new_sequence();
  GoldenCollector collector(&r.hidden);
  auto t0 = std::chrono::steady_clock::now();
  int64_t next = 0;
  if (o.keep_logits) {
    r.logits = engine.prefill(*seq, prompt, /*all_logits=*/true, o.collect_hidden ? &collector : nullptr);
    if (o.max_new_tokens > 0) next = pick(r.logits.data() + (r.prompt_tokens - 1) * V);
  } else {
    const std::vector<float> last = engine.prefill(*seq, prompt, /*all_logits=*/false,
                                                   o.collect_hidden ? &collector : nullptr);
    if (o.max_new_tokens > 0) next = pick(last.data());
  }
  r.prefill_seconds = seconds_since(t0);
  if (o.max_new_tokens == 0) return r;
  const Engine::Choice choice{o.temperature, o.top_k, o.top_p, &rng};
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    r.decode_ids.push_back(next);
    if (on_token) on_token(next);
    bool stop = false;
    for (int64_t s : o.stop_ids) stop = stop || s == next;
    if (!o.keep_logits) {
      if (stop || i + 1 == o.max_new_tokens) break;  // the last pick is not kept: no need to run it
      next = engine.forward_pick({seq.get()}, {{int32_t(next)}}, {choice})[0];
      continue;
    }
    std::vector<float> lg = engine.decode({seq.get()}, {int32_t(next)});
    r.decode_logits.insert(r.decode_logits.end(), lg.begin(), lg.end());
    if (stop) break;
    next = pick(lg.data());
  }
  r.decode_seconds = seconds_since(t0);
  return r;
}

std::map<std::string, DumpTensor> GenerateResult::tensors() const {
  std::map<std::string, DumpTensor> m = hidden;
  for (const auto& [name, t] : constants) m[name] = t;
  DumpTensor lg;
  lg.shape = {1, prompt_tokens, vocab};
  lg.f32 = logits;
  m["logits"] = std::move(lg);
  DumpTensor ids;
  ids.shape = {int64_t(decode_ids.size())};
  ids.is_int = true;
  ids.i64 = decode_ids;
  m["decode_ids"] = std::move(ids);
  DumpTensor dl;
  dl.shape = {int64_t(decode_ids.size()), vocab};
  dl.f32 = decode_logits;
  m["decode_logits"] = std::move(dl);
  return m;
}

void write_dump(const std::string& path, const GenerateResult& result) {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, t] : result.tensors())
    out[name] = t.is_int ? HostTensor::from_i64(t.shape, t.i64.data()) : HostTensor::from_f32(t.shape, t.f32.data());
  write_safetensors(path, out, {{"producer", "ling run"}});
}

}  // namespace ling
