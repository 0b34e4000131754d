// Engine: the forward pass written once against Backend (architecture.md §2.1): embed → per layer
// h += Attn(RMSNorm_in(h)); h += FFN(RMSNorm_post(h)) → model.norm → lm_head. Validates ids and positions,
// packs several sequences into one batch, and reports named intermediates to an optional Observer.
#include "ling/engine/engine.h"

#include <filesystem>

#include <algorithm>

#include "ling/core/error.h"
#include "ling/engine/tensor_parallel.h"
#include "ling/ref/ops.h"
#if LING_HAS_CUDA
#include "cuda/nccl_all_reduce.h"
#endif
#include "ling/core/safetensors.h"

namespace ling {

#if !LING_HAS_CUDA
int cuda_device_count() { return 0; }
#endif

std::vector<uint64_t> Backend::step_begin(const std::vector<int32_t>&, const BatchPlan&) {
  LING_THROW(name(), " backend: decode-step graphs are not supported");
}

void Backend::scale_rows(Buffer& x, const std::vector<float>& f) {
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t c = 0; c < x.cols; ++c) x.data[t * x.cols + c] *= f[size_t(t)];
}
void Backend::add_row_vector(Buffer& x, const std::vector<float>& v) {
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t c = 0; c < x.cols; ++c) x.data[t * x.cols + c] += v[size_t(c)];
}

void Backend::attn_lightning_unnormed(int, const Buffer&, const BatchPlan&, Buffer&, std::vector<double>&) {
  LING_THROW(name(), " backend: Lightning GroupRMSNorm groups spanning tensor-parallel ranks are not supported");
}

std::unique_ptr<Engine> Engine::open(const std::string& model_dir, const EngineOptions& options) {
  ModelConfig config = load_config(model_dir);
  if (!options.decay.empty()) config.decay = parse_decay_variant(options.decay);
  LING_CHECK(config.family != Family::DeepseekV3, config.source, ": architecture ", config.architecture,
             " is supported by 'ling inspect' only");
  LING_CHECK(!config.linear_silu, config.source, ": linear_silu = true is not supported (the HF code ignores it)");
  LING_CHECK(config.hidden_act == "silu", config.source, ": hidden_act '", config.hidden_act, "' is not supported");
  std::unique_ptr<Backend> backend;
  const bool tensor_parallel = options.tp > 1 || options.ep > 1;
  if (tensor_parallel) {
    TpPlan plan{options.tp, options.ep};
    plan.dp_attention = options.dp_attention;
    if (options.backend == "cpu") {
      backend = make_tp_backend(plan, options.backend_options,
                                [](int64_t, const BackendOptions& o) { return make_cpu_backend(o); });
    } else if (options.backend == "cuda" && options.launch.multi()) {
#if LING_HAS_CUDA
      // One process per rank: this process drives rank launch.rank on its local GPU.
      LING_CHECK(options.launch.world == options.tp, "--tp ", options.tp, " differs from the launch's world size ",
                 options.launch.world);
      const int dev = options.launch.local_rank % std::max(1, cuda_device_count());
      TpPlan mp = plan;
      mp.replicate_lm_head = true;
      backend = make_tp_backend(mp, options.backend_options,
                                [dev](int64_t, const BackendOptions& o) {
                                  BackendOptions d = o;
                                  d.device = dev;
                                  return make_cuda_backend(d);
                                },
                                make_nccl_all_reduce_rank(options.launch, dev), {options.launch.rank});
#else
      LING_THROW("no CUDA device: this build has no CUDA backend (configure with -DLING_CUDA=ON); use --backend cpu");
#endif
    } else if (options.backend == "cuda") {
#if LING_HAS_CUDA
      backend = make_tp_backend(plan, options.backend_options,
                                [](int64_t r, const BackendOptions& o) {
                                  BackendOptions d = o;
                                  d.device = int(r);
                                  return make_cuda_backend(d);
                                },
                                make_nccl_all_reduce(options.tp));
#else
      LING_THROW("no CUDA device: this build has no CUDA backend (configure with -DLING_CUDA=ON); use --backend cpu");
#endif
    } else {
      LING_THROW("unknown backend '", options.backend, "' (expected cpu or cuda)");
    }
  } else if (options.backend == "cpu") backend = make_cpu_backend(options.backend_options);
  else if (options.backend == "cuda") {
#if LING_HAS_CUDA
    backend = make_cuda_backend(options.backend_options);
#else
    LING_THROW("no CUDA device: this build has no CUDA backend (configure with -DLING_CUDA=ON); use --backend cpu");
#endif
  }
  else LING_THROW("unknown backend '", options.backend, "' (expected cpu or cuda)");
  const std::string dir = std::filesystem::is_directory(model_dir)
                              ? model_dir : std::filesystem::path(model_dir).parent_path().string();
  Checkpoint ckpt = Checkpoint::open(dir.empty() ? "." : dir);
  std::function<bool(int64_t)> keep;
  if (options.launch.multi() && options.backend == "cuda") {  // one rank per process: read only its experts
    const auto [first, count] = rank_experts(config, TpPlan{options.tp, options.ep}, options.launch.rank);
    keep = [first = first, count = count](int64_t e) { return e >= first && e < first + count; };
  }
  std::unique_ptr<Engine> engine;
  if (tensor_parallel) {  // the ranks' slices cut as the layers are read: never the whole model on the host
    load_tp_streamed(*backend, config, ckpt, keep);
    engine = std::unique_ptr<Engine>(new Engine(std::move(config), std::move(backend)));
  } else {
    auto weights = std::make_shared<ModelWeights>(load_weights(config, ckpt, keep));
    engine = std::make_unique<Engine>(std::move(config), std::move(weights), std::move(backend));
  }
  LING_CHECK(options.prefill_chunk >= 0, "--prefill-chunk: ", options.prefill_chunk, " is negative");
  engine->set_prefill_chunk(options.prefill_chunk);
  return engine;
}

Engine::Engine(ModelConfig config, std::shared_ptr<const ModelWeights> weights, std::unique_ptr<Backend> backend)
    : config_(std::move(config)), backend_(std::move(backend)) {
  backend_->load(config_, std::move(weights));
}

Engine::Engine(ModelConfig config, std::unique_ptr<Backend> loaded)
    : config_(std::move(config)), backend_(std::move(loaded)) {}

Engine::Engine(ModelConfig config, std::shared_ptr<ModelWeights> owned, std::unique_ptr<Backend> backend)
    : config_(std::move(config)), backend_(std::move(backend)) {
  backend_->load_owned(config_, std::move(owned));
}

std::unique_ptr<Sequence> Engine::new_sequence() {
  auto s = std::make_unique<Sequence>();
  s->state_ = backend_->new_state();
  return s;
}

namespace {
void observe(Observer* obs, Backend& be, const std::string& name, const Buffer& b) {
  if (!obs || !obs->wants(name)) return;
  std::vector<float> host(size_t(b.rows * b.cols));
  be.to_host(b, host.data());
  obs->on_f32(name, {b.rows, b.cols}, host.data());
}
}  // namespace

std::vector<float> Engine::forward(const std::vector<Sequence*>& seqs, const std::vector<std::vector<int32_t>>& tokens,
                                   bool all_logits, Observer* obs) {
  const Buffer lg = forward_logits(seqs, tokens, all_logits, obs);
  std::vector<float> logits(size_t(lg.rows * lg.cols));
  backend_->to_host(lg, logits.data());
  if (obs && obs->wants("logits")) obs->on_f32("logits", {lg.rows, lg.cols}, logits.data());
  return logits;
}

std::vector<int64_t> Engine::forward_pick(const std::vector<Sequence*>& seqs,
                                          const std::vector<std::vector<int32_t>>& tokens,
                                          const std::vector<Choice>& choices) {
  LING_CHECK(choices.size() == seqs.size(), "forward_pick: ", seqs.size(), " sequences but ", choices.size(),
             " choices");
  for (const Choice& ch : choices) LING_CHECK(ch.top_k >= 0, "forward_pick: top_k ", ch.top_k, " is negative");
  const Buffer lg = forward_logits(seqs, tokens, /*all_logits=*/false, nullptr);
  const int64_t V = lg.cols;
  std::vector<TokenPick> picks(choices.size());
  for (size_t i = 0; i < choices.size(); ++i) {
    const Choice& ch = choices[i];
    ref::SamplingParams sp;
    sp.vocab = V, sp.temperature = ch.temperature, sp.top_k = ch.top_k, sp.top_p = ch.top_p;
    picks[i] = {ch.temperature, ch.top_k, ch.top_p, ch.rng ? ref::sample_draw(sp, ch.rng) : 0};
    if (!ch.rng) picks[i].temperature = 0.0f;  // nothing to draw: the cheapest pick, discarded below
  }
  std::vector<int64_t> ids;
  if (!backend_->pick_tokens(lg, picks, ids)) {
    std::vector<float> logits(size_t(lg.rows * lg.cols));
    backend_->to_host(lg, logits.data());
    ids.assign(picks.size(), -1);
    for (size_t i = 0; i < picks.size(); ++i) {
      ref::SamplingParams sp;
      sp.logits = logits.data() + int64_t(i) * V, sp.vocab = V;
      sp.temperature = picks[i].temperature, sp.top_k = picks[i].top_k, sp.top_p = picks[i].top_p;
      ids[i] = ref::sample_with_draw(sp, picks[i].draw);
    }
  }
  for (size_t i = 0; i < choices.size(); ++i)
    if (!choices[i].rng) ids[i] = -1;
  return ids;
}

Buffer Engine::forward_logits(const std::vector<Sequence*>& seqs, const std::vector<std::vector<int32_t>>& tokens,
                              bool all_logits, Observer* obs) {
  LING_CHECK(seqs.size() == tokens.size() && !seqs.empty(), "forward: ", seqs.size(), " sequences but ",
             tokens.size(), " token lists");
  const ModelConfig& c = config_;
  BatchPlan plan;
  std::vector<int32_t> ids;
  std::vector<int64_t> out_rows;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = *seqs[i];
    const auto& tk = tokens[i];
    LING_CHECK(!tk.empty(), "forward: sequence ", i, " has no tokens");
    LING_CHECK(s.length_ + int64_t(tk.size()) <= c.max_position_embeddings, "sequence of ", s.length_ + int64_t(tk.size()),
               " tokens exceeds max_position_embeddings = ", c.max_position_embeddings, " of ", c.source);
    for (size_t j = 0; j < i; ++j) LING_CHECK(seqs[j] != seqs[i], "forward: sequence ", i, " appears twice in one batch");
    for (int32_t id : tk)
      LING_CHECK(id >= 0 && id < c.vocab_size, "token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")");
    SeqSlice sl;
    sl.state = s.state_.get();
    sl.row0 = int64_t(ids.size());
    sl.count = int64_t(tk.size());
    sl.pos0 = s.length_;
    plan.seqs.push_back(sl);
    for (int64_t t = 0; t < sl.count; ++t) {
      plan.pos.push_back(sl.pos0 + t);
      if (all_logits || t == sl.count - 1) out_rows.push_back(sl.row0 + t);
    }
    ids.insert(ids.end(), tk.begin(), tk.end());
  }
  Backend& be = *backend_;
  const int64_t n = int64_t(ids.size()), H = c.hidden_size;
  bool single = true;
  for (const SeqSlice& sl : plan.seqs) single = single && sl.count == 1;
  Buffer lg;
  if (single && !all_logits && !obs && be.step_graphs()) {
    // Decode step: eager the first time its key is seen, captured the second time, replayed from then on.
    const std::vector<uint64_t> key = be.step_begin(ids, plan);
    struct StepGuard {
      Backend& be;
      ~StepGuard() { be.step_end(); }  // also when an op throws: the backend leaves step mode (and any capture)
    } guard{be};
    if (steps_.size() > 64) steps_.clear();  // keys of finished sequences are never seen again
    StepEntry& e = steps_[key];
    if (!e.h.data) {
      e.h = be.alloc(n, H);
      e.a = be.alloc(n, H);
      e.o = be.alloc(n, H);
      e.lg = be.alloc(int64_t(out_rows.size()), c.vocab_size);
    }
    if (e.graph) {
      be.replay(*e.graph);
    } else if (e.runs > 0 && be.graphs_enabled()) {
      be.capture_begin();
      run_layers(plan, ids, out_rows, e.h, e.a, e.o, e.lg, nullptr);
      e.graph = be.capture_end();
      be.replay(*e.graph);
    } else {
      run_layers(plan, ids, out_rows, e.h, e.a, e.o, e.lg, nullptr);
    }
    ++e.runs;
    lg = e.lg;
  } else {
    Buffer h = be.alloc(n, H), a = be.alloc(n, H), o = be.alloc(n, H);
    lg = be.alloc(int64_t(out_rows.size()), c.vocab_size);
    run_layers(plan, ids, out_rows, h, a, o, lg, obs);
  }
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->length_ += int64_t(tokens[i].size());
  return lg;
}

void Engine::run_layers(const BatchPlan& plan, const std::vector<int32_t>& ids, const std::vector<int64_t>& out_rows,
                        Buffer& h, Buffer& a, Buffer& o, Buffer& lg, Observer* obs) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t n = int64_t(ids.size());
  be.embed(ids, h);
  MoeTrace trace;
  be.norm(NormSlot::Input, 0, h, a);
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    const LayerSpec& ls = c.layers[il];
    const std::string pre = obs ? "blk." + std::to_string(il) + "." : std::string();
    observe(obs, be, pre + "attn_in", a);
    switch (ls.attn) {
      case AttnKind::GQA: be.attn_gqa(int(il), a, plan, o); break;
      case AttnKind::Lightning: be.attn_lightning(int(il), a, plan, o); break;
      case AttnKind::MLA: be.attn_mla(int(il), a, plan, o); break;
    }
    observe(obs, be, pre + "attn_out", o);
    be.add_norm(h, o, NormSlot::PostAttention, int(il), a);  // h += attn; a = RMSNorm_post(h)
    // h += ffn; a = the next layer's input norm of h, or the final norm after the last layer.
    const bool last = il + 1 == c.num_hidden_layers;
    const NormSlot next_slot = last ? NormSlot::Final : NormSlot::Input;
    const int next_layer = last ? 0 : int(il + 1);
    if (ls.ffn == FfnKind::Dense) {
      be.dense_ffn(int(il), a, o);
    } else {
      const bool want = obs && (obs->wants(pre + "moe.topk_ids") || obs->wants(pre + "moe.topk_weights"));
      be.moe_ffn(int(il), a, o, want ? &trace : nullptr);
      if (want) {
        const int64_t k = c.num_experts_per_tok;
        obs->on_i64(pre + "moe.topk_ids", {n, k}, trace.ids.data());
        obs->on_f32(pre + "moe.topk_weights", {n, k}, trace.weights.data());
      }
    }
    observe(obs, be, pre + "ffn_out", o);
    be.add_norm(h, o, next_slot, next_layer, a);
    observe(obs, be, pre + "out", h);
  }
  observe(obs, be, "final_norm", a);
  be.lm_head(a, out_rows, lg);
}

std::vector<float> Engine::prefill(Sequence& seq, const std::vector<int32_t>& tokens, bool all_logits, Observer* obs) {
  const int64_t chunk = prefill_chunk();
  const int64_t T = int64_t(tokens.size());
  // An observer sees whole tensors: a prompt under observation runs in one piece.
  if (obs || chunk <= 0 || T <= chunk) return forward({&seq}, {tokens}, all_logits, obs);
  LING_CHECK(seq.length_ + T <= config_.max_position_embeddings, "sequence of ", seq.length_ + T,
             " tokens exceeds max_position_embeddings = ", config_.max_position_embeddings, " of ", config_.source);
  for (int32_t id : tokens)  // every id checked before the first piece touches a cache
    LING_CHECK(id >= 0 && id < config_.vocab_size, "token id ", id, " outside the vocabulary [0, ", config_.vocab_size, ")");
  std::vector<float> logits;
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const std::vector<int32_t> piece(tokens.begin() + t0, tokens.begin() + std::min(T, t0 + chunk));
    std::vector<float> lg = forward({&seq}, {piece}, all_logits, nullptr);
    if (all_logits) logits.insert(logits.end(), lg.begin(), lg.end());
    else logits = std::move(lg);
  }
  return logits;
}

int64_t Engine::prefill_chunk() const {
  return prefill_chunk_ > 0 ? prefill_chunk_ : backend_->prefill_rows();
}

std::vector<float> Engine::decode(const std::vector<Sequence*>& seqs, const std::vector<int32_t>& tokens, Observer* obs) {
  LING_CHECK(seqs.size() == tokens.size(), "decode: ", seqs.size(), " sequences but ", tokens.size(), " tokens");
  std::vector<std::vector<int32_t>> tk;
  for (int32_t t : tokens) tk.push_back({t});
  return forward(seqs, tk, false, obs);
}

}  // namespace ling
