// Sequential output-projection refit of a converted model (see refit.h): per MLA layer in order, the source
// and the converted model run over the calibration windows, the projection sums are gathered and `dense` is
// replaced by the ridge solution; at the end model.safetensors is rewritten (atomic rename).
#include "ling/calib/refit.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "ling/convert/qk_fusion.h"
#include "ling/convert/refit.h"
#include "ling/core/dtype.h"
#include "ling/core/error.h"
#include "ling/core/fs.h"
#include "ling/core/safetensors.h"
#include "ling/engine/engine.h"
#include "ling/engine/rope.h"
#include "windows.h"
#include "ling/tokenizer/tokenizer.h"

namespace ling::calib {

namespace fs = std::filesystem;

namespace {

// Copies the named f32 intermediates of one forward pass.
class Capture : public Observer {
 public:
  explicit Capture(std::vector<std::string> names) : names_(std::move(names)) {}
  bool wants(const std::string& name) const override {
    for (const auto& n : names_)
      if (n == name) return true;
    return false;
  }
  void on_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) override {
    if (!wants(name)) return;
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    got[name].assign(data, data + numel);
  }
  void on_i64(const std::string&, const std::vector<int64_t>&, const int64_t*) override {}
  std::map<std::string, std::vector<float>> got;

 private:
  std::vector<std::string> names_;
};

void mm(const float* x, int64_t n, int64_t K, const Mat& w, const Mat& bias, float* y) {
  ref::LinearParams p;
  p.x = x; p.w = w.data(); p.bias = bias.data(); p.y = y; p.M = n; p.N = w.rows; p.K = K;
  ref::linear(p);
}

float round_to(float v, DType t) {
  if (t == DType::BF16) return round_bf16(v);
  if (t == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

std::unique_ptr<Engine> cpu_engine(const ModelConfig& c, std::shared_ptr<const ModelWeights> w, int threads) {
  BackendOptions bo;
  bo.threads = threads;
  return std::make_unique<Engine>(c, std::move(w), make_cpu_backend(bo));
}

// Source q̂ [n, nh, d] and k̂ [n, nkv, d] of a GQA layer: QK-norm (when the model has it) and NeoX RoPE applied.
void source_qk(const ModelConfig& c, const LayerWeights& L, const ref::RopeFreqs& rf, const float* x, int64_t n,
               std::vector<float>& q, std::vector<float>& k) {
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, d = c.head_dim, W = (nh + 2 * nkv) * d;
  std::vector<float> qkv(size_t(n * W));
  mm(x, n, c.hidden_size, L.qkv, L.qkv_bias, qkv.data());
  q.resize(size_t(n * nh * d));
  k.resize(size_t(n * nkv * d));
  auto put = [&](const float* v, const Mat& g, float* out) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(v[j]) * v[j];
    const double inv = g.empty() ? 1.0 : 1.0 / std::sqrt(ss / double(d) + c.rms_norm_eps);
    for (int64_t j = 0; j < d; ++j) out[j] = g.empty() ? v[j] : float(v[j] * inv) * g.v[size_t(j)];
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < nh; ++h) put(qkv.data() + t * W + h * d, L.q_norm, q.data() + (t * nh + h) * d);
    for (int64_t g = 0; g < nkv; ++g) put(qkv.data() + t * W + (nh + g) * d, L.k_norm, k.data() + (t * nkv + g) * d);
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = t;
  ref::RopeParams rp;
  rp.pos = pos.data(); rp.inv_freq = rf.inv_freq.data(); rp.rows = n; rp.rope_dim = c.rope_dim();
  rp.attention_factor = rf.attention_factor; rp.head_stride = d;
  rp.x = q.data(); rp.heads = nh; rp.row_stride = nh * d; ref::rope(rp);
  rp.x = k.data(); rp.heads = nkv; rp.row_stride = nkv * d; ref::rope(rp);
}

}  // namespace

RefitSteps parse_refit_target(const std::string& target) {
  RefitSteps st;
  size_t at = 0;
  std::string last;
  while (at <= target.size()) {
    const size_t plus = target.find('+', at);
    const std::string part = target.substr(at, plus == std::string::npos ? std::string::npos : plus - at);
    // Steps in their order of application: inputs, keys, then one projection target.
    auto rank_of = [](const std::string& x) {
      return x == "inputs" ? 0 : x == "keys" ? 1 : x == "temperature" ? 2 : (x == "dense" || x == "dense-residual") ? 3 : -1;
    };
    const int rank = rank_of(part), prev = last.empty() ? -1 : rank_of(last);
    LING_CHECK(rank >= 0 && rank > prev, "--refit: '", target, "' is not a '+'-list of inputs, keys, temperature ",
               "and dense or dense-residual, in that order");
    if (rank == 0) st.inputs = true;
    if (rank == 1) st.keys = true;
    if (rank == 2) st.temperature = true;
    if (rank == 3) st.dense = part;
    last = part;
    if (plus == std::string::npos) break;
    at = plus + 1;
  }
  return st;
}

void check_refit_options(const RefitOptions& o) {
  parse_refit_target(o.target);
  LING_CHECK(o.rows > 0, "--refit-rows must be positive");
  LING_CHECK(!o.data.empty(), "--refit needs --refit-data (calibration text)");
  LING_CHECK(o.tokens > 0 && o.seq_len > 0, "--refit-tokens and --refit-seq-len must be positive");
  LING_CHECK(o.ridge > 0 && std::isfinite(o.ridge), "--refit-ridge must be positive");
}

MlaParts mla_parts(const ModelConfig& c, const LayerWeights& L, const ref::RopeFreqs& rf, const float* x, int64_t n) {
  const int64_t H = c.hidden_size, nh = c.num_attention_heads;
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim;
  const int64_t r = c.kv_lora_rank, dqk = dn + dr, lc = r + dr;
  MlaParts P;
  P.q.resize(size_t(n * nh * dqk));
  P.ckv.resize(size_t(n * lc));
  ref::RmsNormParams ln;
  ln.eps = 1e-6;  // latent norms use the hard-wired eps (architecture.md §2.7 step 2)
  if (!L.q_a.empty()) {
    const int64_t rq = c.q_lora_rank;
    std::vector<float> qa(size_t(n * rq));
    mm(x, n, H, L.q_a, L.q_a_bias, qa.data());
    ln.x = ln.y = qa.data(); ln.w = L.q_a_norm.data(); ln.rows = n; ln.dim = rq;
    ref::rms_norm(ln);
    mm(qa.data(), n, rq, L.q_b, Mat{}, P.q.data());
  } else {
    mm(x, n, H, L.q_proj, L.q_proj_bias, P.q.data());
  }
  mm(x, n, H, L.kv_a, L.kv_a_bias, P.ckv.data());
  ln.x = ln.y = P.ckv.data(); ln.w = L.kv_a_norm.data(); ln.rows = n; ln.dim = r; ln.ldx = ln.ldy = lc;
  ref::rms_norm(ln);
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = t;
  ref::RopeParams rp;
  rp.pos = pos.data(); rp.inv_freq = rf.inv_freq.data(); rp.rows = n; rp.rope_dim = dr;
  rp.attention_factor = rf.attention_factor; rp.interleaved = true;
  rp.x = P.q.data() + dn; rp.heads = nh; rp.row_stride = nh * dqk; rp.head_stride = dqk; ref::rope(rp);
  rp.x = P.ckv.data() + r; rp.heads = 1; rp.row_stride = lc; rp.head_stride = lc; ref::rope(rp);
  P.scale = float(std::pow(double(dqk), -0.5) * rf.mla_mscale2);
  return P;
}

std::vector<float> mla_attention_core(const ModelConfig& c, const LayerWeights& L, const ref::RopeFreqs& rf,
                                      const float* x, int64_t n) {
  const int64_t nh = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim;
  const int64_t r = c.kv_lora_rank, dqk = dn + dr, lc = r + dr;
  const MlaParts P = mla_parts(c, L, rf, x, n);
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = t;
  // K [n, nh, dqk], V [n, nh, dv] from the latent.
  std::vector<float> lat(size_t(n * r)), kv(size_t(n * nh * (dn + dv))), K(size_t(n * nh * dqk)),
      V(size_t(n * nh * dv)), o(size_t(n * nh * dv));
  for (int64_t t = 0; t < n; ++t) std::memcpy(lat.data() + t * r, P.ckv.data() + t * lc, sizeof(float) * size_t(r));
  mm(lat.data(), n, r, L.kv_b, Mat{}, kv.data());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t h = 0; h < nh; ++h) {
      const float* src = kv.data() + (j * nh + h) * (dn + dv);
      float* kd = K.data() + (j * nh + h) * dqk;
      std::memcpy(kd, src, sizeof(float) * size_t(dn));
      std::memcpy(kd + dn, P.ckv.data() + j * lc + r, sizeof(float) * size_t(dr));
      std::memcpy(V.data() + (j * nh + h) * dv, src + dn, sizeof(float) * size_t(dv));
    }
  ref::AttentionParams a;
  a.q = P.q.data(); a.k = K.data(); a.v = V.data(); a.o = o.data(); a.qpos = pos.data();
  a.T = n; a.S = n; a.nh = nh; a.nkv = nh; a.dk = dqk; a.dv = dv;
  a.scale = P.scale;
  ref::attention_gemm(a);
  return o;
}

namespace {

// Key up-projection refit of MLA layer l (convert/refit.h): per sampled query row of each window, the source
// attention row (normed q̂·k̂ on the source's inputs) against the converted logits (on the converted model's
// inputs); W_UK,h of every head is replaced in `dw` (rounded to the stored dtype of kv_b).
// Input correction of MLA layer l: M = argmin Σ‖x_src − M x'‖² + λ‖M − I‖² (x_src the source layer input,
// x' the converted one), folded into the layer's input projections (q_proj or q_a_proj, kv_a_proj_with_mqa):
// W ← W·M, so that on the drifted inputs they reproduce what they give on the source's inputs.
// One window through both models up to layer l's attention input: the converted layer's query / latent parts
// and the source layer's normalised, rotated queries and keys (host recomputation from the captured inputs).
struct WindowQk {
  MlaParts P;
  std::vector<float> sq, sk;
  int64_t nh = 0, nkv = 0, ds = 0, dn = 0, dr = 0, r = 0;
  // Query row t, head h against key s: the source logit q̂·k̂ and the converted logit's RoPE and NoPE dot products,
  // all unscaled (kn: converted_keys of this window).
  struct Parts {
    double src = 0, pe = 0, nope = 0;
  };
  Parts parts(const std::vector<std::vector<double>>& kn, int64_t t, int64_t h, int64_t s) const {
    const int64_t dqk = dn + dr, lc = r + dr;
    const float* qs = sq.data() + (t * nh + h) * ds;
    const float* qd = P.q.data() + (t * nh + h) * dqk;
    const float* kk = sk.data() + (s * nkv + h / (nh / nkv)) * ds;
    Parts o;
    for (int64_t j = 0; j < ds; ++j) o.src += double(qs[j]) * kk[j];
    for (int64_t j = 0; j < dr; ++j) o.pe += double(qd[dn + j]) * P.ckv[size_t(s * lc + r + j)];
    for (int64_t j = 0; j < dn; ++j) o.nope += double(qd[j]) * kn[size_t(h)][size_t(s * dn + j)];
    return o;
  }
};
WindowQk window_qk(Engine& src, Engine& dst, const std::vector<int32_t>& win, const std::string& in,
                   const ModelConfig& scfg, const LayerWeights& SL, const ref::RopeFreqs& srf, const ModelConfig& dcfg,
                   const LayerWeights& L, const ref::RopeFreqs& drf) {
  const int64_t n = int64_t(win.size());
  Capture cs({in}), cd({in});
  src.prefill(*src.new_sequence(), win, false, &cs);
  dst.prefill(*dst.new_sequence(), win, false, &cd);
  WindowQk w;
  w.nh = dcfg.num_attention_heads, w.nkv = scfg.num_key_value_heads, w.ds = scfg.head_dim;
  w.dn = dcfg.qk_nope_head_dim, w.dr = dcfg.qk_rope_head_dim, w.r = dcfg.kv_lora_rank;
  w.P = mla_parts(dcfg, L, drf, cd.got.at(in).data(), n);
  source_qk(scfg, SL, srf, cs.got.at(in).data(), n, w.sq, w.sk);
  return w;
}

// The converted model's keys W_UK,h·c_s [nh][n, dn] (fp64) from the latent rows c [n] (row stride ldc, the first r
// values of each row are the latent).
std::vector<std::vector<double>> converted_keys(const LayerWeights& L, const float* c, int64_t ldc, int64_t n,
                                                int64_t nh, int64_t dn, int64_t dv, int64_t r) {
  std::vector<std::vector<double>> kn(static_cast<size_t>(nh), std::vector<double>(size_t(n * dn), 0.0));
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < dn; ++i) {
        const float* wr = L.kv_b.v.data() + (h * (dn + dv) + i) * r;
        double v = 0;
        for (int64_t j = 0; j < r; ++j) v += double(wr[j]) * c[s * ldc + j];
        kn[size_t(h)][size_t(s * dn + i)] = v;
      }
  return kn;
}

nlohmann::json refit_inputs(const RefitOptions& o, Engine& src, const ModelConfig& dcfg, ModelWeights& dw, int64_t l,
                            const std::vector<std::vector<int32_t>>& windows, const Checkpoint& dck) {
  const int64_t H = dcfg.hidden_size;
  const std::string in = "blk." + std::to_string(l) + ".attn_in";
  auto dst = cpu_engine(dcfg, std::shared_ptr<const ModelWeights>(&dw, [](const ModelWeights*) {}), o.threads);
  convert::ProjectionSums sums;
  sums.init(H, H);
  for (const auto& win : windows) {
    Capture cs({in}), cd({in});
    src.prefill(*src.new_sequence(), win, false, &cs);
    dst->prefill(*dst->new_sequence(), win, false, &cd);
    sums.add(cd.got.at(in).data(), cs.got.at(in).data(), int64_t(win.size()));
  }
  std::vector<float> eye(size_t(H * H), 0.0f);
  for (int64_t i = 0; i < H; ++i) eye[size_t(i * H + i)] = 1.0f;
  const double before = convert::projection_rel_error(sums, eye.data(), H, H);
  const convert::MatD M = convert::ridge_projection(sums, o.ridge, eye.data());
  std::vector<float> mf(M.v.begin(), M.v.end());
  const double after = convert::projection_rel_error(sums, mf.data(), H, H);
  LayerWeights& L = dw.layers[size_t(l)];
  const std::string a = "model.layers." + std::to_string(l) + ".attention.";
  auto fold = [&](Mat& w, const std::string& name) {  // w [rows, H] ← w·M
    const DType dt = dck.get(name).dtype;
    std::vector<float> out(w.v.size());
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t j = 0; j < H; ++j) {
        double v = 0;
        for (int64_t k = 0; k < H; ++k) v += double(w.v[size_t(r * H + k)]) * M(k, j);
        out[size_t(r * H + j)] = round_to(float(v), dt);
      }
    w.v = std::move(out);
  };
  fold(L.kv_a, a + "kv_a_proj_with_mqa.weight");
  if (L.q_a.empty()) fold(L.q_proj, a + "q_proj.weight");
  else fold(L.q_a, a + "q_a_proj.weight");
  return {{"rel_err_before", before}, {"rel_err_after", after}};
}

// Per-head temperature of MLA layer l: the multiplier m of each head's query rows that minimises
// Σ_rows KL(p_src ‖ softmax(m·ℓ')) over the KL grid of qk_fusion.h (parabola-refined), ℓ' the converted logits on
// the converted inputs, p_src the source attention row on the source's inputs (sampled query rows per window).
nlohmann::json refit_temperature(const RefitOptions& o, const ModelConfig& scfg, const LayerWeights& SL, Engine& src,
                                 const ModelConfig& dcfg, ModelWeights& dw, int64_t l,
                                 const std::vector<std::vector<int32_t>>& windows) {
  const int64_t nh = dcfg.num_attention_heads, dn = dcfg.qk_nope_head_dim, dr = dcfg.qk_rope_head_dim;
  const int64_t dv = dcfg.v_head_dim, r = dcfg.kv_lora_rank, dqk = dn + dr, lc = r + dr;
  const int64_t ds = scfg.head_dim;
  const ref::RopeFreqs srf = ref::rope_freqs(rope_freq_params(scfg)), drf = ref::rope_freqs(rope_freq_params(dcfg));
  const double sscale = 1.0 / std::sqrt(double(ds));
  LayerWeights& L = dw.layers[size_t(l)];
  convert::QkStats st;
  st.nh = nh;
  st.t_kl.assign(size_t(nh * convert::kKlGrid), 0.0);
  const std::string in = "blk." + std::to_string(l) + ".attn_in";
  auto dst = cpu_engine(dcfg, std::shared_ptr<const ModelWeights>(&dw, [](const ModelWeights*) {}), o.threads);
  std::vector<double> ls, lc_, p;
  for (const auto& win : windows) {
    const int64_t n = int64_t(win.size());
    const WindowQk w = window_qk(src, *dst, win, in, scfg, SL, srf, dcfg, L, drf);
    const MlaParts& P = w.P;
    // Converted keys [nh][n, dn] = W_UK,h·c_s.
    const auto kn = converted_keys(L, P.ckv.data(), lc, n, nh, dn, dv, r);
    const int64_t stride = std::max<int64_t>(1, n / o.rows);
    for (int64_t t = n - 1, taken = 0; t >= 0 && taken < o.rows; t -= stride, ++taken) {
      const int64_t m = t + 1;
      ls.resize(size_t(m));
      lc_.resize(size_t(m));
      p.resize(size_t(m));
      for (int64_t h = 0; h < nh; ++h) {
        double mx = -1e300;
        for (int64_t s = 0; s < m; ++s) {
          const WindowQk::Parts q = w.parts(kn, t, h, s);
          ls[size_t(s)] = sscale * q.src;
          lc_[size_t(s)] = double(P.scale) * (q.pe + q.nope);
          mx = std::max(mx, ls[size_t(s)]);
        }
        double z = 0;
        for (int64_t s = 0; s < m; ++s) z += (p[size_t(s)] = std::exp(ls[size_t(s)] - mx));
        const double logz = std::log(z) + mx;
        for (double& v : p) v /= z;
        for (int gi = 0; gi < convert::kKlGrid; ++gi) {
          const double mul = convert::kl_grid_multiplier(gi);
          double mc = -1e300;
          for (int64_t s = 0; s < m; ++s) mc = std::max(mc, mul * lc_[size_t(s)]);
          double zc = 0;
          for (int64_t s = 0; s < m; ++s) zc += std::exp(mul * lc_[size_t(s)] - mc);
          const double logzc = std::log(zc) + mc;
          double kl = 0;
          for (int64_t s = 0; s < m; ++s)
            if (p[size_t(s)] > 0) kl += p[size_t(s)] * ((ls[size_t(s)] - logz) - (mul * lc_[size_t(s)] - logzc));
          st.t_kl[size_t(h * convert::kKlGrid + gi)] += kl;
        }
      }
      st.t_rows += 1;
    }
  }
  const std::vector<double> temp = convert::lsq_temperatures(st);
  Mat& q = L.q_a.empty() ? L.q_proj : L.q_b;  // the rows of head h: [h·dqk, (h+1)·dqk)
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t i = h * dqk * q.cols; i < (h + 1) * dqk * q.cols; ++i) q.v[size_t(i)] *= float(temp[size_t(h)]);
  return temp;
}

nlohmann::json refit_keys(const RefitOptions& o, const ModelConfig& scfg, const LayerWeights& SL, Engine& src,
                          const ModelConfig& dcfg, ModelWeights& dw, int64_t l,
                          const std::vector<std::vector<int32_t>>& windows, const Checkpoint& dck) {
  const int64_t nh = dcfg.num_attention_heads, dn = dcfg.qk_nope_head_dim, dr = dcfg.qk_rope_head_dim;
  const int64_t dv = dcfg.v_head_dim, r = dcfg.kv_lora_rank, dqk = dn + dr, lc = r + dr;
  const int64_t ds = scfg.head_dim;
  LING_CHECK(dn * r <= 8192, "--refit keys: qk_nope_head_dim·kv_lora_rank = ", dn * r,
             " exceeds 8192 (the per-head normal matrix would need ", (dn * r) * (dn * r) * 8 / 1000000, " MB)");
  LING_CHECK(scfg.num_attention_heads == nh, "--refit keys: source and converted head counts differ");
  const ref::RopeFreqs srf = ref::rope_freqs(rope_freq_params(scfg)), drf = ref::rope_freqs(rope_freq_params(dcfg));
  const double sscale = 1.0 / std::sqrt(double(ds));
  LayerWeights& L = dw.layers[size_t(l)];
  std::vector<convert::KeyRefitSums> ks(static_cast<size_t>(nh));
  for (auto& k : ks) k.init(dn, r);
  const std::string in = "blk." + std::to_string(l) + ".attn_in";
  auto dst = cpu_engine(dcfg, std::shared_ptr<const ModelWeights>(&dw, [](const ModelWeights*) {}), o.threads);
  std::vector<double> a(static_cast<size_t>(dn)), u, p, pc, c;
  for (const auto& win : windows) {
    const int64_t n = int64_t(win.size());
    const WindowQk w = window_qk(src, *dst, win, in, scfg, SL, srf, dcfg, L, drf);
    const MlaParts& P = w.P;
    c.resize(size_t(n * r));
    for (int64_t s = 0; s < n; ++s)
      for (int64_t j = 0; j < r; ++j) c[size_t(s * r + j)] = P.ckv[size_t(s * lc + j)];
    // Current converted keys W_UK,h·c_s [nh][n, dn], for the converted attention rows.
    const auto kn = converted_keys(L, P.ckv.data(), lc, n, nh, dn, dv, r);
    const int64_t stride = std::max<int64_t>(1, n / o.rows);
    for (int64_t t = n - 1, taken = 0; t >= 0 && taken < o.rows; t -= stride, ++taken) {
      const int64_t m = t + 1;
      u.resize(size_t(m));
      p.resize(size_t(m));
      for (int64_t h = 0; h < nh; ++h) {
        const float* qd = P.q.data() + (t * nh + h) * dqk;
        double mx = -1e300, mc = -1e300;
        pc.resize(size_t(m));
        for (int64_t s = 0; s < m; ++s) {
          const WindowQk::Parts q = w.parts(kn, t, h, s);
          p[size_t(s)] = sscale * q.src;
          pc[size_t(s)] = double(P.scale) * (q.pe + q.nope);
          u[size_t(s)] = sscale * q.src - double(P.scale) * q.pe;
          mx = std::max(mx, p[size_t(s)]);
          mc = std::max(mc, pc[size_t(s)]);
        }
        double z = 0, zc = 0;
        for (double& v : p) z += (v = std::exp(v - mx));
        for (double& v : pc) zc += (v = std::exp(v - mc));
        // Weights: the mean of the source row and the converted row (both directions of the KL), so that keys
        // the source ignores but the converted model attends to are constrained too.
        for (int64_t s = 0; s < m; ++s) p[size_t(s)] = 0.5 * (p[size_t(s)] / z + pc[size_t(s)] / zc);
        for (int64_t i = 0; i < dn; ++i) a[size_t(i)] = double(P.scale) * qd[i];
        ks[size_t(h)].add_row(a.data(), c.data(), u.data(), p.data(), m);
      }
    }
  }
  const DType dt = dck.get("model.layers." + std::to_string(l) + ".attention.kv_b_proj.weight").dtype;
  nlohmann::json heads = nlohmann::json::array();
  for (int64_t h = 0; h < nh; ++h) {
    std::vector<double> w0(size_t(dn * r));
    for (int64_t i = 0; i < dn; ++i)
      for (int64_t j = 0; j < r; ++j) w0[size_t(i * r + j)] = L.kv_b.v[size_t((h * (dn + dv) + i) * r + j)];
    const std::vector<double> w = convert::solve_key_refit(ks[size_t(h)], w0, o.ridge);
    for (int64_t i = 0; i < dn; ++i)
      for (int64_t j = 0; j < r; ++j)
        L.kv_b.v[size_t((h * (dn + dv) + i) * r + j)] = round_to(float(w[size_t(i * r + j)]), dt);
    std::vector<double> wr(size_t(dn * r));
    for (int64_t i = 0; i < dn; ++i)
      for (int64_t j = 0; j < r; ++j) wr[size_t(i * r + j)] = L.kv_b.v[size_t((h * (dn + dv) + i) * r + j)];
    heads.push_back({{"head", h}, {"rel_obj_before", convert::key_refit_rel_objective(ks[size_t(h)], w0)},
                     {"rel_obj_after", convert::key_refit_rel_objective(ks[size_t(h)], wr)},
                     {"rows", ks[size_t(h)].rows}});
  }
  return heads;
}

}  // namespace

nlohmann::json refit_converted(const RefitOptions& o, const std::string& folder,
                               const std::function<void(const std::string&)>& log_fn) {
  auto log = [&](const std::string& s) { if (log_fn) log_fn(s); };
  check_refit_options(o);
  const ModelConfig scfg = load_config((fs::path(o.source) / "config.json").string());
  const ModelConfig dcfg = load_config((fs::path(folder) / "config.json").string());
  LING_CHECK(scfg.num_hidden_layers == dcfg.num_hidden_layers && scfg.hidden_size == dcfg.hidden_size, folder,
             ": the converted model's layers or hidden size differ from the source ", o.source);
  const int64_t H = dcfg.hidden_size, NL = dcfg.num_hidden_layers, m = dcfg.num_attention_heads * dcfg.v_head_dim;

  Tokenizer tok = Tokenizer::load(o.source);
  const std::string text = read_file(o.data);
  const auto windows = token_windows(tok, text, o.data, o.tokens, o.seq_len, "--refit-tokens");

  Checkpoint sck = Checkpoint::open(o.source);
  auto sw = std::make_shared<const ModelWeights>(load_weights(scfg, sck));
  auto src = cpu_engine(scfg, sw, o.threads);
  nlohmann::json report = nlohmann::json::array();
  std::map<std::string, std::vector<float>> refit;  // tensor name → new values (rounded to the stored dtype)
  {
    Checkpoint dck = Checkpoint::open(folder);
    auto dw = std::make_shared<ModelWeights>(load_weights(dcfg, dck));
    const ref::RopeFreqs rf = ref::rope_freqs(rope_freq_params(dcfg));
    for (int64_t l = 0; l < NL; ++l) {
      if (dcfg.layers[size_t(l)].attn != AttnKind::MLA) continue;
      const auto t0 = std::chrono::steady_clock::now();
      const std::string pre = "blk." + std::to_string(l) + ".", prev = "blk." + std::to_string(l - 1) + ".out";
      const RefitSteps steps = parse_refit_target(o.target);
      const bool keys = steps.keys;
      const std::string dense_target = steps.dense;
      const bool resid = dense_target == "dense-residual" && l > 0;
      nlohmann::json row = {{"layer", l}};
      if (steps.inputs) {
        row["inputs"] = refit_inputs(o, *src, dcfg, *dw, l, windows, dck);
        const LayerWeights& L = dw->layers[size_t(l)];
        const std::string a = "model.layers." + std::to_string(l) + ".attention.";
        refit[a + "kv_a_proj_with_mqa.weight"] = L.kv_a.v;
        refit[L.q_a.empty() ? a + "q_proj.weight" : a + "q_a_proj.weight"] = L.q_a.empty() ? L.q_proj.v : L.q_a.v;
      }
      if (keys) {
        row["keys"] = refit_keys(o, scfg, sw->layers[size_t(l)], *src, dcfg, *dw, l, windows, dck);
        refit["model.layers." + std::to_string(l) + ".attention.kv_b_proj.weight"] = dw->layers[size_t(l)].kv_b.v;
      }
      if (steps.temperature) {
        row["temperature"] = refit_temperature(o, scfg, sw->layers[size_t(l)], *src, dcfg, *dw, l, windows);
        const LayerWeights& L = dw->layers[size_t(l)];
        const std::string a = "model.layers." + std::to_string(l) + ".attention.";
        refit[L.q_a.empty() ? a + "q_proj.weight" : a + "q_b_proj.weight"] = L.q_a.empty() ? L.q_proj.v : L.q_b.v;
      }
      if (dense_target.empty()) {
        row["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        log(row.dump());
        report.push_back(row);
        continue;
      }
      std::vector<std::string> sn{pre + "attn_out"}, dn{pre + "attn_in"};
      if (resid) { sn.push_back(prev); dn.push_back(prev); }
      convert::ProjectionSums sums;
      sums.init(m, H);
      auto dst = cpu_engine(dcfg, dw, o.threads);
      LayerWeights& L = dw->layers[size_t(l)];
      for (const auto& win : windows) {
        const int64_t n = int64_t(win.size());
        Capture cs(sn), cd(dn);
        src->prefill(*src->new_sequence(), win, false, &cs);
        dst->prefill(*dst->new_sequence(), win, false, &cd);
        std::vector<float>& y = cs.got.at(pre + "attn_out");
        if (resid) {
          const std::vector<float>&hs = cs.got.at(prev), &hd = cd.got.at(prev);
          for (size_t i = 0; i < y.size(); ++i) y[i] += hs[i] - hd[i];
        }
        const std::vector<float> oc = mla_attention_core(dcfg, L, rf, cd.got.at(pre + "attn_in").data(), n);
        sums.add(oc.data(), y.data(), n);
      }
      const double before = convert::projection_rel_error(sums, L.dense.data(), H, m);
      const convert::MatD W = convert::ridge_projection(sums, o.ridge, L.dense.data());
      const DType dt = dck.get("model.layers." + std::to_string(l) + ".attention.dense.weight").dtype;
      std::vector<float> nw(size_t(H * m));
      for (size_t i = 0; i < nw.size(); ++i) nw[i] = round_to(float(W.v[i]), dt);
      const double after = convert::projection_rel_error(sums, nw.data(), H, m);
      L.dense.v = nw;  // later layers see the refit projection
      refit["model.layers." + std::to_string(l) + ".attention.dense.weight"] = std::move(nw);
      row["target"] = resid ? "dense-residual" : "dense";
      row["rel_err_before"] = before;
      row["rel_err_after"] = after;
      row["tokens"] = sums.tokens;
      row["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log(row.dump());
      report.push_back(row);
    }
  }

  // Rewrite model.safetensors with the refit projections (the writer renames its temp file at finish()).
  Checkpoint dck = Checkpoint::open(folder);
  LING_CHECK(dck.files().size() == 1, folder, ": refit expects one model.safetensors file");
  const SafetensorsFile& f = *dck.files()[0];
  SafetensorsWriter w(f.path(), f.metadata());
  for (const TensorInfo& t : f.tensors()) w.declare(t.name, t.dtype, t.shape);
  for (const TensorInfo& t : f.tensors()) {
    auto it = refit.find(t.name);
    if (it == refit.end()) {
      w.write(t.name, t.data, t.nbytes());
      continue;
    }
    const std::vector<float>& v = it->second;
    LING_CHECK(t.numel() == int64_t(v.size()), folder, ": tensor '", t.name, "' has ", t.numel(), " values, refit ",
               v.size());
    if (t.dtype == DType::F32) {
      w.write(t.name, v.data(), v.size() * sizeof(float));
    } else {
      LING_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16, folder, ": tensor '", t.name, "' is ",
                 dtype_name(t.dtype), "; refit writes F32/BF16/F16");
      std::vector<uint16_t> b(v.size());
      for (size_t i = 0; i < v.size(); ++i) b[i] = t.dtype == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      w.write(t.name, b.data(), b.size() * sizeof(uint16_t));
    }
  }
  w.finish();
  return report;
}

}  // namespace ling::calib
