// Tensor/expert-parallel Backend over rank backends (tensor_parallel.h).
#include "ling/engine/tensor_parallel.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>

#include "ling/core/error.h"
#include "ling/model/parallel.h"

namespace ling {

namespace {

// Rows [r0, r0 + n) of a [rows, cols] matrix (vectors: rows = 1, use cols_slice).
Mat row_slice(const Mat& m, int64_t r0, int64_t n) {
  if (m.empty()) return {};
  Mat out;
  out.rows = n;
  out.cols = m.cols;
  out.v.assign(m.v.begin() + r0 * m.cols, m.v.begin() + (r0 + n) * m.cols);
  return out;
}
// Concatenated row ranges.
Mat rows_of(const Mat& m, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  if (m.empty()) return {};
  Mat out;
  out.cols = m.cols;
  for (auto [r0, n] : ranges) {
    out.v.insert(out.v.end(), m.v.begin() + r0 * m.cols, m.v.begin() + (r0 + n) * m.cols);
    out.rows += n;
  }
  return out;
}
// Columns [c0, c0 + n) of a [rows, cols] matrix.
Mat col_slice(const Mat& m, int64_t c0, int64_t n) {
  if (m.empty()) return {};
  Mat out;
  out.rows = m.rows;
  out.cols = n;
  out.v.resize(size_t(m.rows * n));
  for (int64_t r = 0; r < m.rows; ++r)
    std::memcpy(out.v.data() + r * n, m.v.data() + r * m.cols + c0, sizeof(float) * size_t(n));
  return out;
}
// Elements [e0, e0 + n) of a vector stored as [1, n] (or [n, 1]).
Mat vec_slice(const Mat& m, int64_t e0, int64_t n) {
  if (m.empty()) return {};
  Mat out;
  out.rows = 1;
  out.cols = n;
  out.v.assign(m.v.begin() + e0, m.v.begin() + e0 + n);
  return out;
}
// The rank's rows of a fused qkv weight and bias (row ranges `rr`); the QK-norm gains are per head-dim: shared.
void slice_qkv(const LayerWeights& L, LayerWeights& o, const std::vector<std::pair<int64_t, int64_t>>& rr) {
  o.qkv = rows_of(L.qkv, rr);
  if (!L.qkv_bias.empty()) {
    Mat b = L.qkv_bias;  // [1, rows]: slice as a column vector
    b.rows = b.cols;
    b.cols = 1;
    o.qkv_bias = rows_of(b, rr);
    std::swap(o.qkv_bias.rows, o.qkv_bias.cols);
  }
  o.q_norm = L.q_norm;
  o.k_norm = L.k_norm;
}
// A fused SwiGLU [2I, H] (gate rows, then up rows) and its down [H, I], columns shard j of s.
ExpertWeights swiglu_slice(const ExpertWeights& e, int64_t j, int64_t s) {
  if (e.gate_up.empty()) return {};
  const int64_t I = e.gate_up.rows / 2, n = I / s;
  return ExpertWeights{rows_of(e.gate_up, {{j * n, n}, {I + j * n, n}}), col_slice(e.down, j * n, n)};
}

struct TpSeqState : SeqState {
  std::vector<std::unique_ptr<SeqState>> ranks;
  int64_t owner = 0;  // DP attention: the rank that holds this sequence's attention caches
};

// A Buffer of the TP backend: one buffer per rank (the residual stream is replicated); data = rank 0's.
struct TpBuffer {
  std::vector<Buffer> ranks;
};

class TpBackend final : public Backend {
 public:
  TpBackend(const TpPlan& p, const BackendOptions& base, RankBackendFactory f, AllReduce ar, std::vector<int64_t> local)
      : plan_(p), base_(base), factory_(std::move(f)), all_reduce_(std::move(ar)), local_(std::move(local)) {
    LING_CHECK(p.tp >= 1 && p.ep >= 1 && p.tp % p.ep == 0, "--ep ", p.ep, " must divide --tp ", p.tp);
    if (local_.empty())
      for (int64_t r = 0; r < p.tp; ++r) local_.push_back(r);
    for (int64_t r : local_) LING_CHECK(r >= 0 && r < p.tp, "rank ", r, " is outside --tp ", p.tp);
    LING_CHECK(all_reduce_ || int64_t(local_.size()) == p.tp, "internal error: ranks outside this process need an all-reduce");
  }
  TpCommStats comm_stats() const { return comm_; }  // all-reduce calls and their host wall time so far
  // Every rank cuts prompts the same way (the limit depends on the config only).
  int64_t prefill_rows() const override { return ranks_.empty() ? 0 : ranks_[0]->prefill_rows(); }
  std::string name() const override {
    return ranks_.empty() ? "tp" : "tp" + std::to_string(plan_.tp) + "(" + ranks_[0]->name() + ")";
  }

  void load(const ModelConfig& c, std::shared_ptr<const ModelWeights> w) override {
    check_tp_plan(c, plan_);
    std::vector<RankModel> models;
    for (int64_t r : local_) models.push_back(slice_for_rank(c, *w, plan_, r, base_));
    keep_biases(*w);
    start(c, std::move(models));
  }
  // The only reference: each full layer is freed once every local rank has its slice, so the host holds the
  // full model and the slices together for one layer at a time, not for all of them.
  void load_owned(const ModelConfig& c, std::shared_ptr<ModelWeights> w) override {
    if (w.use_count() != 1) return load(c, std::move(w));
    check_tp_plan(c, plan_);
    keep_biases(*w);
    std::vector<RankModel> models = slice_for_ranks(c, *w, plan_, local_, base_);
    w.reset();
    start(c, std::move(models));
  }
  // Straight from the checkpoint: the ranks' slices cut as the layers are read (load_weights_streamed).
  void load_streamed(const ModelConfig& c, const Checkpoint& ckpt, const std::function<bool(int64_t)>& keep_expert) {
    check_tp_plan(c, plan_);
    RankSlicer slicer(c, plan_, local_, base_);
    const ModelWeights globals =
        load_weights_streamed(c, ckpt, keep_expert, [&](LayerWeights&& L) { slicer.add_layer(std::move(L)); });
    std::vector<RankModel> models = slicer.finish(globals);
    dense_bias_ = slicer.dense_biases();
    start(c, std::move(models));
  }

 private:
  void keep_biases(const ModelWeights& w) {  // the full output biases the span path adds after the all-reduce
    dense_bias_.clear();
    for (const LayerWeights& L : w.layers) dense_bias_.push_back(L.dense_bias);
  }
  void start(const ModelConfig& c, std::vector<RankModel> models) {
    ranks_.clear();
    for (size_t i = 0; i < local_.size(); ++i) {
      ranks_.push_back(factory_(local_[i], models[i].options));
      ranks_.back()->load(models[i].config, std::move(models[i].weights));
    }
    if (!all_reduce_) all_reduce_ = host_sum(ranks_);
    heads_ = c.num_attention_heads;
    head_dim_ = c.head_dim;
    group_norm_size_ = c.group_norm_size;
    eps_ = c.rms_norm_eps;
    span_ = !plan_.dp_attention && c.has_lightning() && c.group_norm_size < plan_.tp;
  }

 public:
  std::unique_ptr<SeqState> new_state() override {
    auto s = std::make_unique<TpSeqState>();
    for (auto& r : ranks_) s->ranks.push_back(r->new_state());
    s->owner = next_owner_++ % plan_.tp;  // DP attention: round-robin placement
    return s;
  }
  Buffer alloc(int64_t rows, int64_t cols) override {
    auto tb = std::make_shared<TpBuffer>();
    for (auto& r : ranks_) tb->ranks.push_back(r->alloc(rows, cols));
    Buffer b;
    b.data = tb->ranks[0].data;
    b.rows = rows;
    b.cols = cols;
    b.owner = tb;
    return b;
  }
  void to_host(const Buffer& b, float* dst) override { ranks_[0]->to_host(part(b, 0), dst); }
  void embed(const std::vector<int32_t>& ids, Buffer& out) override {
    for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->embed(ids, part(out, r));
  }
  void norm(NormSlot slot, int layer, const Buffer& x, Buffer& out) override {
    for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->norm(slot, layer, part(x, r), part(out, r));
  }
  void add(Buffer& h, const Buffer& d) override {
    for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->add(part(h, r), part(d, r));
  }
  void lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) override {
    ranks_[0]->lm_head(part(x, 0), rows, part(logits, 0));
  }

  void attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    if (plan_.dp_attention)
      return dp_reduce(out, plan, [&](Backend& b, size_t r, const BatchPlan& p) { b.attn_gqa(layer, part(x, r), p, part(out, r)); });
    reduce(out, [&](Backend& b, size_t r) { b.attn_gqa(layer, part(x, r), rank_plan(plan, r), part(out, r)); });
  }
  void attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    if (plan_.dp_attention)
      return dp_reduce(out, plan,
                       [&](Backend& b, size_t r, const BatchPlan& p) { b.attn_lightning(layer, part(x, r), p, part(out, r)); });
    if (!span_) {
      reduce(out, [&](Backend& b, size_t r) { b.attn_lightning(layer, part(x, r), rank_plan(plan, r), part(out, r)); });
      return;
    }
    // GroupRMSNorm groups span ranks: each rank returns its unnormalised partial output and its channels' sums
    // of squares; the group's RMS scales the partials (a scalar per token for all of a rank's channels, which
    // commutes with the rank's slice of the dense projection); then the all-reduce and the output bias.
    LING_CHECK(int64_t(ranks_.size()) == plan_.tp, "Lightning GroupRMSNorm groups spanning ranks need every rank in "
               "this process (their sums of squares meet on the host)");
    std::vector<std::vector<double>> ss(ranks_.size());
    for (size_t r = 0; r < ranks_.size(); ++r)
      ranks_[r]->attn_lightning_unnormed(layer, part(x, r), rank_plan(plan, r), part(out, r), ss[r]);
    const int64_t per_group = plan_.tp / group_norm_size_, n = out.rows;
    const double channels = double(heads_ * head_dim_) / double(group_norm_size_);
    for (int64_t g = 0; g < group_norm_size_; ++g) {
      std::vector<float> inv(static_cast<size_t>(n));
      for (int64_t t = 0; t < n; ++t) {
        double s = 0;
        for (int64_t r = g * per_group; r < (g + 1) * per_group; ++r) s += ss[size_t(r)][size_t(t)];
        inv[size_t(t)] = float(1.0 / std::sqrt(s / channels + eps_));
      }
      for (int64_t r = g * per_group; r < (g + 1) * per_group; ++r) ranks_[size_t(r)]->scale_rows(part(out, size_t(r)), inv);
    }
    std::vector<Buffer*> parts;
    for (size_t r = 0; r < ranks_.size(); ++r) parts.push_back(&part(out, r));
    timed_all_reduce(parts);
    const Mat& bias = dense_bias_[size_t(layer)];
    if (!bias.empty())
      for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->add_row_vector(part(out, r), bias.v);
  }
  void attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    if (plan_.dp_attention)
      return dp_reduce(out, plan, [&](Backend& b, size_t r, const BatchPlan& p) { b.attn_mla(layer, part(x, r), p, part(out, r)); });
    reduce(out, [&](Backend& b, size_t r) { b.attn_mla(layer, part(x, r), rank_plan(plan, r), part(out, r)); });
  }
  void dense_ffn(int layer, const Buffer& x, Buffer& out) override {
    reduce(out, [&](Backend& b, size_t r) { b.dense_ffn(layer, part(x, r), part(out, r)); });
  }
  void moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) override {
    reduce(out, [&](Backend& b, size_t r) { b.moe_ffn(layer, part(x, r), part(out, r), r == 0 ? trace : nullptr); });
  }

 private:
  static Buffer& part(const Buffer& b, size_t r) {
    auto* tb = static_cast<TpBuffer*>(b.owner.get());
    LING_CHECK(tb && r < tb->ranks.size(), "internal error: a buffer not allocated by the TP backend");
    return tb->ranks[r];
  }
  BatchPlan rank_plan(const BatchPlan& p, size_t r) const {
    BatchPlan q = p;
    for (SeqSlice& s : q.seqs) s.state = static_cast<TpSeqState*>(s.state)->ranks[r].get();
    return q;
  }
  // DP attention: each rank runs the block for the sequences it owns (its caches), the rows of the other
  // sequences are cleared, and the all-reduce assembles the full output on every rank (host buffers).
  template <class F>
  void dp_reduce(Buffer& out, const BatchPlan& plan, F&& block) {
    LING_CHECK(int64_t(ranks_.size()) == plan_.tp && ranks_[0]->name() == "cpu",
               "DP attention runs on CPU ranks in this build (it needs every rank in this process and host buffers)");
    for (size_t r = 0; r < ranks_.size(); ++r) {
      BatchPlan mine = plan;
      mine.seqs.clear();
      std::vector<char> owned(size_t(out.rows), 0);
      for (const SeqSlice& s : plan.seqs) {
        auto* ts = static_cast<TpSeqState*>(s.state);
        if (ts->owner != int64_t(r)) continue;
        SeqSlice q = s;
        q.state = ts->ranks[r].get();
        mine.seqs.push_back(q);
        std::fill(owned.begin() + s.row0, owned.begin() + s.row0 + s.count, 1);
      }
      Buffer& o = part(out, r);
      if (!mine.seqs.empty()) block(*ranks_[r], r, mine);
      for (int64_t t = 0; t < out.rows; ++t)
        if (!owned[size_t(t)] || mine.seqs.empty()) std::fill(o.data + t * out.cols, o.data + (t + 1) * out.cols, 0.0f);
    }
    std::vector<Buffer*> parts;
    for (size_t r = 0; r < ranks_.size(); ++r) parts.push_back(&part(out, r));
    timed_all_reduce(parts);
  }
  // Every rank writes its partial block output, then the all-reduce leaves the sum on every rank.
  template <class F>
  void reduce(Buffer& out, F&& block) {
    for (size_t r = 0; r < ranks_.size(); ++r) block(*ranks_[r], r);
    std::vector<Buffer*> parts;
    for (size_t r = 0; r < ranks_.size(); ++r) parts.push_back(&part(out, r));
    timed_all_reduce(parts);
  }
  // The all-reduce with its host wall time counted (comm_stats): for NCCL ranks this includes waiting until every
  // device has reached the call, since the call synchronises the devices around the collective.
  void timed_all_reduce(std::vector<Buffer*>& parts) {
    const auto t0 = std::chrono::steady_clock::now();
    all_reduce_(parts);
    comm_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++comm_.calls;
  }

  // Host all-reduce for rank backends whose buffers are host memory (CPU): sum into rank 0, copy back.
  static AllReduce host_sum(std::vector<std::unique_ptr<Backend>>& ranks) {
    return [&ranks](std::vector<Buffer*>& parts) {
      for (size_t r = 1; r < parts.size(); ++r) ranks[0]->add(*parts[0], *parts[r]);
      const size_t n = size_t(parts[0]->rows * parts[0]->cols);
      for (size_t r = 1; r < parts.size(); ++r) std::memcpy(parts[r]->data, parts[0]->data, sizeof(float) * n);
    };
  }

  TpPlan plan_;
  BackendOptions base_;
  RankBackendFactory factory_;
  AllReduce all_reduce_;
  std::vector<int64_t> local_;  // global rank of each entry of ranks_
  std::vector<Mat> dense_bias_;  // [L] the full output biases (added after the all-reduce on the span path)
  int64_t heads_ = 0, head_dim_ = 0, group_norm_size_ = 1;
  double eps_ = 1e-6;
  bool span_ = false;           // Lightning GroupRMSNorm groups span ranks
  TpCommStats comm_;
  int64_t next_owner_ = 0;      // DP attention: the next new sequence's rank
  std::vector<std::unique_ptr<Backend>> ranks_;
};

}  // namespace

void check_tp_plan(const ModelConfig& c, const TpPlan& p) { check_plan(c, ParallelPlan{p.tp, p.ep, p.dp_attention}); }

std::pair<int64_t, int64_t> rank_experts(const ModelConfig& c, const TpPlan& p, int64_t rank) {
  const int64_t per = c.num_experts > 0 ? c.num_experts / p.ep : 0;
  return {(rank / (p.tp / p.ep)) * per, per};
}

namespace {

// A rank's config (rank-local head counts and widths) and backend options.
RankModel rank_header(const ModelConfig& c, const TpPlan& p, int64_t r, const BackendOptions& base) {
  check_tp_plan(c, p);
  LING_CHECK(r >= 0 && r < p.tp, "internal error: rank ", r, " of ", p.tp);
  const int64_t tp = p.tp, nh = c.num_attention_heads, nh_r = nh / tp, h0 = r * nh_r;
  const int64_t nkv = c.num_key_value_heads, nkv_r = nkv >= tp ? nkv / tp : 1;
  const int64_t group = tp / p.ep;
  RankModel m;
  m.config = c;
  const bool dp = p.dp_attention;
  const bool span = !dp && c.group_norm_size < tp;  // a GroupRMSNorm group spans tp/group_norm_size ranks
  if (!dp) {
    m.config.num_attention_heads = nh_r;
    m.config.num_key_value_heads = nkv_r;
    m.config.group_norm_size = span ? 1 : c.group_norm_size / tp;
  }
  m.config.intermediate_size = c.intermediate_size / tp;
  m.config.moe_intermediate_size = c.moe_intermediate_size / group;
  m.options = base;
  m.options.head_offset = dp ? 0 : h0;
  m.options.total_heads = nh;
  return m;
}

// The tensors outside the layers: every rank keeps the residual stream (embedding, final norm); the LM head on
// rank 0 or on every rank.
void copy_globals(const ModelWeights& w, const TpPlan& p, int64_t r, ModelWeights& out) {
  out.stored_dtype = w.stored_dtype;
  out.embed = w.embed;
  out.norm = w.norm;
  if (r == 0 || p.replicate_lm_head) out.lm_head = w.lm_head;
}

// Rank r's slice of one layer.
LayerWeights slice_layer(const ModelConfig& c, const LayerWeights& L, const TpPlan& p, int64_t r) {
  const int64_t tp = p.tp, nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t nh_r = nh / tp, h0 = r * nh_r;
  const int64_t nkv_r = nkv >= tp ? nkv / tp : 1, g0 = nkv >= tp ? r * nkv_r : h0 / (nh / nkv);
  const int64_t group = tp / p.ep, shard = r % group;
  const auto [e0, e_per] = rank_experts(c, p, r);
  const bool dp = p.dp_attention;
  const bool span = !dp && c.group_norm_size < tp;
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim;
  LayerWeights o;
  o.spec = L.spec;
  o.input_norm = L.input_norm;
  o.post_norm = L.post_norm;
  const bool bias_here = r == 0;
  if (dp) {  // attention replicated: every tensor whole (the TP backend keeps each sequence's rows on its rank)
    for (Mat LayerWeights::*f : {&LayerWeights::qkv, &LayerWeights::qkv_bias, &LayerWeights::q_norm,
                                 &LayerWeights::k_norm, &LayerWeights::g_proj, &LayerWeights::g_norm,
                                 &LayerWeights::dense, &LayerWeights::dense_bias, &LayerWeights::q_a,
                                 &LayerWeights::q_a_bias, &LayerWeights::q_a_norm, &LayerWeights::q_b,
                                 &LayerWeights::q_proj, &LayerWeights::q_proj_bias, &LayerWeights::kv_a,
                                 &LayerWeights::kv_a_bias, &LayerWeights::kv_a_norm, &LayerWeights::kv_b})
      o.*f = L.*f;
  } else {
    switch (L.spec.attn) {
      case AttnKind::GQA: {
        const std::vector<std::pair<int64_t, int64_t>> rr = {
            {h0 * hd, nh_r * hd}, {(nh + g0) * hd, nkv_r * hd}, {(nh + nkv + g0) * hd, nkv_r * hd}};
        slice_qkv(L, o, rr);
        o.dense = col_slice(L.dense, h0 * hd, nh_r * hd);
        break;
      }
      case AttnKind::Lightning: {
        const std::vector<std::pair<int64_t, int64_t>> rr = {
            {h0 * hd, nh_r * hd}, {(nh + h0) * hd, nh_r * hd}, {(2 * nh + h0) * hd, nh_r * hd}};
        slice_qkv(L, o, rr);
        o.g_proj = row_slice(L.g_proj, h0 * hd, nh_r * hd);
        o.g_norm = vec_slice(L.g_norm, h0 * hd, nh_r * hd);
        o.dense = col_slice(L.dense, h0 * hd, nh_r * hd);
        break;
      }
      case AttnKind::MLA: {
        const int64_t dqk = dn + dr;
        o.q_a = L.q_a;
        o.q_a_bias = L.q_a_bias;
        o.q_a_norm = L.q_a_norm;
        o.q_b = row_slice(L.q_b, h0 * dqk, nh_r * dqk);
        o.q_proj = row_slice(L.q_proj, h0 * dqk, nh_r * dqk);
        o.q_proj_bias = vec_slice(L.q_proj_bias, h0 * dqk, nh_r * dqk);
        o.kv_a = L.kv_a;
        o.kv_a_bias = L.kv_a_bias;
        o.kv_a_norm = L.kv_a_norm;
        o.kv_b = row_slice(L.kv_b, h0 * (dn + dv), nh_r * (dn + dv));
        o.dense = col_slice(L.dense, h0 * dv, nh_r * dv);
        break;
      }
    }
    // Output bias: added once, by rank 0 (by the TP backend itself when the Lightning norm spans ranks).
    if (bias_here && !(span && L.spec.attn == AttnKind::Lightning)) o.dense_bias = L.dense_bias;
  }
  if (L.spec.ffn == FfnKind::Dense) {
    const ExpertWeights d = swiglu_slice(ExpertWeights{L.gate_up, L.down}, r, tp);
    o.gate_up = d.gate_up;
    o.down = d.down;
  } else {
    o.router = L.router;
    o.router_bias = L.router_bias;
    o.experts.resize(L.experts.size());
    for (int64_t e = e0; e < e0 + e_per; ++e) o.experts[size_t(e)] = swiglu_slice(L.experts[size_t(e)], shard, group);
    o.shared = swiglu_slice(L.shared, r, tp);
  }
  return o;
}

}  // namespace

RankModel slice_for_rank(const ModelConfig& c, const ModelWeights& w, const TpPlan& p, int64_t r,
                         const BackendOptions& base) {
  RankModel m = rank_header(c, p, r, base);
  auto out = std::make_shared<ModelWeights>();
  copy_globals(w, p, r, *out);
  for (const LayerWeights& L : w.layers) out->layers.push_back(slice_layer(c, L, p, r));
  m.weights = out;
  return m;
}

RankSlicer::RankSlicer(const ModelConfig& c, const TpPlan& p, std::vector<int64_t> ranks, const BackendOptions& base)
    : config_(c), plan_(p), ranks_(std::move(ranks)) {
  for (int64_t r : ranks_) {
    models_.push_back(rank_header(c, p, r, base));
    outs_.push_back(std::make_shared<ModelWeights>());
  }
}

void RankSlicer::add_layer(LayerWeights&& layer) {
  const LayerWeights L = std::move(layer);  // freed when this call returns
  biases_.push_back(L.dense_bias);
  for (size_t i = 0; i < ranks_.size(); ++i) outs_[i]->layers.push_back(slice_layer(config_, L, plan_, ranks_[i]));
}

std::vector<RankModel> RankSlicer::finish(const ModelWeights& globals) {
  for (size_t i = 0; i < ranks_.size(); ++i) {
    copy_globals(globals, plan_, ranks_[i], *outs_[i]);
    models_[i].weights = std::move(outs_[i]);
  }
  return std::move(models_);
}

std::vector<RankModel> slice_for_ranks(const ModelConfig& c, ModelWeights& w, const TpPlan& p,
                                       const std::vector<int64_t>& ranks, const BackendOptions& base) {
  RankSlicer slicer(c, p, ranks, base);
  for (LayerWeights& L : w.layers) {
    const LayerSpec spec = L.spec;
    slicer.add_layer(std::move(L));  // this layer's full tensors are freed
    L = LayerWeights{};
    L.spec = spec;
  }
  std::vector<RankModel> models = slicer.finish(w);
  w.embed = Mat{}, w.lm_head = Mat{};
  return models;
}

void load_tp_streamed(Backend& tp, const ModelConfig& c, const Checkpoint& ckpt,
                      const std::function<bool(int64_t expert)>& keep_expert) {
  auto* be = dynamic_cast<TpBackend*>(&tp);
  LING_CHECK(be != nullptr, "internal error: load_tp_streamed on the ", tp.name(), " backend");
  be->load_streamed(c, ckpt, keep_expert);
}

TpCommStats tp_comm_stats(const Backend& b) {
  const auto* tp = dynamic_cast<const TpBackend*>(&b);
  return tp ? tp->comm_stats() : TpCommStats{};
}

std::unique_ptr<Backend> make_tp_backend(const TpPlan& p, const BackendOptions& base, RankBackendFactory factory,
                                         AllReduce all_reduce, std::vector<int64_t> local_ranks) {
  return std::make_unique<TpBackend>(p, base, std::move(factory), std::move(all_reduce), std::move(local_ranks));
}

}  // namespace ling
