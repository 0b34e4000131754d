// CPU backend on ling_ref (architecture.md §2): batched GEMMs per projection over all packed rows, per-sequence
// attention over the caches, MoE with tokens gathered per expert (one GEMM per expert). Caches: GQA K/V rows,
// MLA latent rows [c ‖ k_pe] with absorbed single-token decode, Lightning fp32 state with chunked prefill and
// recurrent single-token decode. Activations are host f32.
#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "model_tables.h"
#include "ling/core/error.h"
#include "ling/engine/backend.h"
#include "ling/ref/ops.h"

namespace ling {
namespace {

struct CpuLayerCache {
  std::vector<float> k, v;     // GQA: [t, nkv·hd] each
  std::vector<float> latent;   // MLA: [t, r_kv + d_rope]
  std::vector<float> state;    // Lightning: [nh, hd, hd]
};
struct CpuSeqState : SeqState {
  std::vector<CpuLayerCache> layers;
};

// Prefill rows go through the sgemm attention, short steps through the fp64-sum loop.
void attend(const ref::AttentionParams& a) {
  if (a.T >= 16) ref::attention_gemm(a);
  else ref::attention(a);
}

void lin(const float* x, int64_t M, int64_t K, const Mat& w, const Mat& bias, float* y, int64_t ldx = 0, int64_t ldy = 0) {
  LING_CHECK(w.cols == K, "internal error: linear with K ", K, " on a [", w.rows, ", ", w.cols, "] weight");
  ref::LinearParams p;
  p.x = x; p.w = w.data(); p.bias = bias.data(); p.y = y;
  p.M = M; p.N = w.rows; p.K = K; p.ldx = ldx; p.ldy = ldy;
  ref::linear(p);
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& o) : opt_(o) {
    if (o.threads > 0) {
      openblas_set_num_threads(o.threads);
      omp_set_num_threads(o.threads);
    }
  }
  std::string name() const override { return "cpu"; }

  // Projection GEMM. With weight_dtype "bf16" the activations are rounded to bf16 first (the CUDA backend's bf16
  // path in fp32 arithmetic: its oracle; the weights of a bf16 checkpoint are bf16 values already). The MoE
  // router GEMM never comes here: it stays fp32.
  void mm(const float* x, int64_t M, int64_t K, const Mat& w, const Mat& bias, float* y, int64_t ldx = 0,
          int64_t ldy = 0) {
    if (!bf16_) return lin(x, M, K, w, bias, y, ldx, ldy);
    const int64_t lx = ldx ? ldx : K;
    xr_.resize(size_t(M * K));
    for (int64_t r = 0; r < M; ++r)
      for (int64_t c = 0; c < K; ++c) xr_[size_t(r * K + c)] = round_bf16(x[r * lx + c]);
    lin(xr_.data(), M, K, w, bias, y, 0, ldy);
  }

  void load(const ModelConfig& c, std::shared_ptr<const ModelWeights> w) override {
    LING_CHECK(opt_.weight_dtype == "auto" || opt_.weight_dtype == "bf16" || opt_.weight_dtype == "f32",
               "--weight-dtype: '", opt_.weight_dtype, "' is not auto, bf16 or f32");
    bf16_ = opt_.weight_dtype == "bf16";  // the CPU reference computes in f32 unless asked to emulate bf16
    cfg_ = c;
    w_ = std::move(w);
    freqs_ = ref::rope_freqs(rope_freq_params(c));
    decay_.assign(c.num_hidden_layers, {});
    for (int64_t il = 0; il < c.num_hidden_layers; ++il)
      if (c.layers[il].attn == AttnKind::Lightning) decay_[il] = lightning_decays(c, il, opt_);
    if (c.has_mla())
      LING_CHECK(c.rope_dim() == c.qk_rope_head_dim, c.source, ": head_dim·partial_rotary_factor = ", c.rope_dim(),
                 " must equal qk_rope_head_dim = ", c.qk_rope_head_dim, " for MLA layers");
  }

  std::unique_ptr<SeqState> new_state() override {
    auto s = std::make_unique<CpuSeqState>();
    s->layers.resize(cfg_.num_hidden_layers);
    const int64_t nh = cfg_.num_attention_heads, hd = cfg_.head_dim;
    for (int64_t il = 0; il < cfg_.num_hidden_layers; ++il)
      if (cfg_.layers[il].attn == AttnKind::Lightning) s->layers[il].state.assign(nh * hd * hd, 0.0f);
    return s;
  }

  Buffer alloc(int64_t rows, int64_t cols) override {
    auto v = std::make_shared<std::vector<float>>(size_t(rows * cols), 0.0f);
    Buffer b;
    b.data = v->data();
    b.rows = rows;
    b.cols = cols;
    b.owner = v;
    return b;
  }
  void to_host(const Buffer& b, float* dst) override { std::memcpy(dst, b.data, sizeof(float) * b.rows * b.cols); }

  void embed(const std::vector<int32_t>& ids, Buffer& out) override {
    ref::EmbedParams p;
    p.ids = ids.data(); p.table = w_->embed.data(); p.out = out.data; p.n = int64_t(ids.size()); p.H = cfg_.hidden_size;
    ref::embed(p);
  }

  void norm(NormSlot slot, int layer, const Buffer& x, Buffer& out) override {
    const Mat& w = slot == NormSlot::Final ? w_->norm
                   : slot == NormSlot::Input ? w_->layers[layer].input_norm : w_->layers[layer].post_norm;
    ref::RmsNormParams p;
    p.x = x.data; p.w = w.data(); p.y = out.data; p.rows = x.rows; p.dim = x.cols; p.eps = cfg_.rms_norm_eps;
    ref::rms_norm(p);
  }

  void add(Buffer& h, const Buffer& d) override {
    const int64_t n = h.rows * h.cols;
    for (int64_t i = 0; i < n; ++i) h.data[i] += d.data[i];
  }

  // Per-head QK-norm and NeoX RoPE on a packed [n, width] q/k buffer (q heads at column 0, k heads after them).
  void qk_norm_rope(const LayerWeights& L, float* qkv, int64_t n, int64_t width, int64_t nq, int64_t nk,
                    const BatchPlan& plan) {
    ref::QkNormRopeParams p;
    p.x = qkv; p.pos = plan.pos.data(); p.inv_freq = freqs_.inv_freq.data();
    p.wq = L.q_norm.empty() ? nullptr : L.q_norm.data(); p.wk = L.k_norm.empty() ? nullptr : L.k_norm.data();
    p.rows = n; p.nq = nq; p.nk = nk; p.hd = cfg_.head_dim; p.ld = width; p.rope_dim = cfg_.rope_dim();
    p.eps = cfg_.rms_norm_eps; p.attention_factor = freqs_.attention_factor;
    ref::qk_norm_rope(p);
  }

  void attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads;
    const int64_t hd = cfg_.head_dim, width = (nh + 2 * nkv) * hd, kvw = nkv * hd;
    std::vector<float> qkv(n * width), o(n * nh * hd);
    mm(x.data, n, H, L.qkv, L.qkv_bias, qkv.data());
    qk_norm_rope(L, qkv.data(), n, width, nh, nkv, plan);
    for (const SeqSlice& s : plan.seqs) {
      CpuLayerCache& c = static_cast<CpuSeqState*>(s.state)->layers[layer];
      LING_CHECK(int64_t(c.k.size()) == s.pos0 * kvw, "internal error: GQA cache of layer ", layer, " out of step");
      for (int64_t t = 0; t < s.count; ++t) {
        const float* row = qkv.data() + (s.row0 + t) * width;
        c.k.insert(c.k.end(), row + nh * hd, row + nh * hd + kvw);
        c.v.insert(c.v.end(), row + nh * hd + kvw, row + width);
      }
      ref::AttentionParams a;
      a.q = qkv.data() + s.row0 * width; a.ldq = width;
      a.k = c.k.data(); a.v = c.v.data(); a.o = o.data() + s.row0 * nh * hd;
      a.qpos = plan.pos.data() + s.row0; a.T = s.count; a.S = s.pos0 + s.count;
      a.nh = nh; a.nkv = nkv; a.dk = hd; a.dv = hd; a.scale = float(1.0 / std::sqrt(double(hd)));
      attend(a);
    }
    mm(o.data(), n, nh * hd, L.dense, L.dense_bias, out.data);
  }

  void attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    lightning_block(layer, x, plan, out, nullptr);
  }
  void attn_lightning_unnormed(int layer, const Buffer& x, const BatchPlan& plan, Buffer& y,
                               std::vector<double>& sumsq) override {
    lightning_block(layer, x, plan, y, &sumsq);
  }
  // The Lightning block; with `sumsq` the group normalisation and the output bias are left to the caller.
  void lightning_block(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out, std::vector<double>* sumsq) {
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads, hd = cfg_.head_dim;
    const int64_t width = 3 * nh * hd, inner = nh * hd;
    std::vector<float> qkv(n * width), o(n * inner), gate(n * inner);
    mm(x.data, n, H, L.qkv, L.qkv_bias, qkv.data());
    qk_norm_rope(L, qkv.data(), n, width, nh, nh, plan);
    for (const SeqSlice& s : plan.seqs) {
      CpuLayerCache& c = static_cast<CpuSeqState*>(s.state)->layers[layer];
      ref::LightningParams p;
      p.q = qkv.data() + s.row0 * width; p.k = p.q + inner; p.v = p.q + 2 * inner;
      p.ldq = p.ldk = p.ldv = width;
      p.o = o.data() + s.row0 * inner; p.state = c.state.data(); p.g = decay_[layer].data();
      p.T = s.count; p.nh = nh; p.d = hd; p.scale = float(1.0 / std::sqrt(double(hd)));
      p.chunk = opt_.lightning_chunk;
      if (s.count == 1) ref::lightning_recurrent(p); else ref::lightning_chunked(p);
    }
    if (sumsq) {
      sumsq->assign(size_t(n), 0.0);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < inner; ++c) {
          const double v = o[size_t(t * inner + c)];
          (*sumsq)[size_t(t)] += v * v;
          o[size_t(t * inner + c)] *= L.g_norm.v[size_t(c)];
        }
    }
    mm(x.data, n, H, L.g_proj, Mat{}, gate.data());
    if (sumsq) {
      for (int64_t i = 0; i < n * inner; ++i) o[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
    } else {
      ref::GroupNormGateParams gn;
      gn.o = o.data(); gn.w = L.g_norm.data(); gn.gate = gate.data(); gn.rows = n; gn.width = inner;
      gn.groups = cfg_.group_norm_size; gn.eps = cfg_.rms_norm_eps;
      ref::group_norm_gate(gn);
    }
    mm(o.data(), n, inner, L.dense, sumsq ? Mat{} : L.dense_bias, out.data);
  }

  void attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads;
    const int64_t dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dv = cfg_.v_head_dim;
    const int64_t r = cfg_.kv_lora_rank, dqk = dn + dr, lc = r + dr;
    std::vector<float> q(n * nh * dqk), ckv(n * lc), o(n * nh * dv);
    ref::RmsNormParams ln;
    ln.eps = 1e-6;  // both latent norms use the hard-wired eps (§2.7 step 2)
    if (!L.q_a.empty()) {
      const int64_t rq = cfg_.q_lora_rank;
      std::vector<float> qa(n * rq);
      mm(x.data, n, H, L.q_a, L.q_a_bias, qa.data());
      ln.x = ln.y = qa.data(); ln.w = L.q_a_norm.data(); ln.rows = n; ln.dim = rq;
      if (opt_.mla_latent_norm) ref::rms_norm(ln);
      mm(qa.data(), n, rq, L.q_b, Mat{}, q.data());
    } else {
      mm(x.data, n, H, L.q_proj, L.q_proj_bias, q.data());
    }
    mm(x.data, n, H, L.kv_a, L.kv_a_bias, ckv.data());
    ln.x = ln.y = ckv.data(); ln.w = L.kv_a_norm.data(); ln.rows = n; ln.dim = r; ln.ldx = ln.ldy = lc;
    if (opt_.mla_latent_norm) ref::rms_norm(ln);
    ref::RopeParams rp;
    rp.pos = plan.pos.data(); rp.inv_freq = freqs_.inv_freq.data(); rp.rows = n; rp.rope_dim = dr;
    rp.attention_factor = freqs_.attention_factor; rp.interleaved = true;
    rp.x = q.data() + dn; rp.heads = nh; rp.row_stride = nh * dqk; rp.head_stride = dqk; ref::rope(rp);
    rp.x = ckv.data() + r; rp.heads = 1; rp.row_stride = lc; rp.head_stride = lc; ref::rope(rp);
    const float scale = float(std::pow(double(dqk), -0.5) * freqs_.mla_mscale2);
    for (const SeqSlice& s : plan.seqs) {
      CpuLayerCache& c = static_cast<CpuSeqState*>(s.state)->layers[layer];
      LING_CHECK(int64_t(c.latent.size()) == s.pos0 * lc, "internal error: MLA cache of layer ", layer, " out of step");
      c.latent.insert(c.latent.end(), ckv.begin() + s.row0 * lc, ckv.begin() + (s.row0 + s.count) * lc);
      const int64_t S = s.pos0 + s.count;
      if (s.count == 1 && opt_.mla_absorbed_decode) {
        ref::MlaDecodeParams d;
        d.q = q.data() + s.row0 * nh * dqk; d.cache = c.latent.data(); d.kv_b = L.kv_b.data();
        d.o = o.data() + s.row0 * nh * dv; d.qpos = plan.pos.data() + s.row0;
        d.T = s.count; d.S = S; d.nh = nh; d.dn = dn; d.dr = dr; d.dv = dv; d.r = r; d.scale = scale;
        ref::mla_decode_absorbed(d);
        continue;
      }
      // Non-absorbed: expand K [S, nh, dqk] and V [S, nh, dv] from the latent cache.
      std::vector<float> kv(S * nh * (dn + dv)), K(S * nh * dqk), V(S * nh * dv);
      mm(c.latent.data(), S, r, L.kv_b, Mat{}, kv.data(), lc);
      for (int64_t j = 0; j < S; ++j)
        for (int64_t h = 0; h < nh; ++h) {
          const float* src = kv.data() + (j * nh + h) * (dn + dv);
          float* kd = K.data() + (j * nh + h) * dqk;
          std::memcpy(kd, src, sizeof(float) * dn);
          std::memcpy(kd + dn, c.latent.data() + j * lc + r, sizeof(float) * dr);
          std::memcpy(V.data() + (j * nh + h) * dv, src + dn, sizeof(float) * dv);
        }
      ref::AttentionParams a;
      a.q = q.data() + s.row0 * nh * dqk; a.k = K.data(); a.v = V.data(); a.o = o.data() + s.row0 * nh * dv;
      a.qpos = plan.pos.data() + s.row0; a.T = s.count; a.S = S; a.nh = nh; a.nkv = nh; a.dk = dqk; a.dv = dv;
      a.scale = scale;
      attend(a);
    }
    mm(o.data(), n, nh * dv, L.dense, L.dense_bias, out.data);
  }

  void swiglu_mlp(const float* x, int64_t n, const ExpertWeights& e, float* y) {
    const int64_t H = cfg_.hidden_size, I = e.gate_up.rows / 2;
    std::vector<float> gu(n * 2 * I);
    mm(x, n, H, e.gate_up, Mat{}, gu.data());
    ref::SwigluParams s;
    s.gu = gu.data(); s.out = gu.data(); s.rows = n; s.I = I;
    ref::swiglu(s);
    mm(gu.data(), n, I, e.down, Mat{}, y);
  }

  void dense_ffn(int layer, const Buffer& x, Buffer& out) override {
    const LayerWeights& L = w_->layers[layer];
    swiglu_mlp(x.data, x.rows, ExpertWeights{L.gate_up, L.down}, out.data);
  }

  void moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) override {
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, E = cfg_.num_experts, k = cfg_.num_experts_per_tok;
    std::vector<float> logits(n * E), wts(n * k);
    std::vector<int32_t> ids(n * k);
    lin(x.data, n, H, L.router, Mat{}, logits.data());
    route_tokens(cfg_, logits.data(), L.router_bias.data(), n, ids, wts, trace);
    // Gather tokens per expert; one GEMM chain per expert; combine in fp32 in top-k order per token.
    std::vector<std::vector<int64_t>> rows_of(E);
    for (int64_t i = 0; i < n * k; ++i) rows_of[ids[i]].push_back(i);
    std::vector<float> ye(n * k * H);  // expert output for slot i = token·k + j

    for (int64_t e = 0; e < E; ++e) {
      const auto& slots = rows_of[e];
      if (slots.empty() || L.experts[e].gate_up.empty()) continue;  // not held here (expert parallelism): adds 0
      const int64_t m = int64_t(slots.size());
      std::vector<float> xe(m * H), y(m * H);
      for (int64_t i = 0; i < m; ++i) std::memcpy(xe.data() + i * H, x.data + (slots[i] / k) * H, sizeof(float) * H);
      swiglu_mlp(xe.data(), m, L.experts[e], y.data());
      for (int64_t i = 0; i < m; ++i) std::memcpy(ye.data() + slots[i] * H, y.data() + i * H, sizeof(float) * H);
    }
    if (!L.shared.gate_up.empty()) swiglu_mlp(x.data, n, L.shared, out.data);
    else std::fill(out.data, out.data + n * H, 0.0f);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < H; ++h) {
        float acc = 0.0f;
        for (int64_t j = 0; j < k; ++j) acc += ye[(t * k + j) * H + h] * wts[t * k + j];
        out.data[t * H + h] += acc;
      }
  }

  void lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) override {
    const int64_t H = cfg_.hidden_size;
    std::vector<float> xs(rows.size() * H);
    for (size_t i = 0; i < rows.size(); ++i) std::memcpy(xs.data() + i * H, x.data + rows[i] * H, sizeof(float) * H);
    mm(xs.data(), int64_t(rows.size()), H, w_->lm_head, Mat{}, logits.data);
  }

 private:
  BackendOptions opt_;
  bool bf16_ = false;         // round GEMM activations to bf16 (weight_dtype "bf16")
  std::vector<float> xr_;     // scratch of the rounded activations
  ModelConfig cfg_;
  std::shared_ptr<const ModelWeights> w_;
  ref::RopeFreqs freqs_;
  std::vector<std::vector<float>> decay_;  // [L][nh] log decay of Lightning layers
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) { return std::make_unique<CpuBackend>(options); }

}  // namespace ling
