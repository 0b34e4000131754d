// Two-pass calibration through the engine observer (see calibrate.h).
#include "ling/calib/calibrate.h"

#include <cblas.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "ling/core/error.h"
#include "ling/core/fs.h"
#include "ling/core/hash.h"
#include "ling/core/safetensors.h"
#include "ling/engine/engine.h"
#include "ling/engine/rope.h"
#include "ling/ref/ops.h"
#include "ling/tokenizer/tokenizer.h"
#include "qk_accumulate.h"
#include "windows.h"

namespace ling::calib {

namespace fs = std::filesystem;
using convert::Calibration;
using convert::LayerCalibration;

namespace {

// Collects blk.L.attn_in of the GQA layers and hands each [n, H] block to `fn(layer, x, n)`.
class AttnInputObserver : public Observer {
 public:
  AttnInputObserver(const ModelConfig& c, std::function<void(int, const float*, int64_t)> fn) : fn_(std::move(fn)) {
    for (const auto& l : c.layers)
      if (!l.mtp && l.attn == AttnKind::GQA) names_["blk." + std::to_string(l.index) + ".attn_in"] = l.index;
  }
  bool wants(const std::string& name) const override { return names_.count(name) > 0; }
  void on_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) override {
    auto it = names_.find(name);
    if (it != names_.end()) fn_(it->second, data, shape[0]);
  }
  void on_i64(const std::string&, const std::vector<int64_t>&, const int64_t*) override {}

 private:
  std::map<std::string, int> names_;
  std::function<void(int, const float*, int64_t)> fn_;
};

// qkv [n, rows] = x [n, H] · Wᵀ (+ bias).
std::vector<float> project(const LayerWeights& L, const float* x, int64_t n, int64_t H) {
  std::vector<float> y(static_cast<size_t>(n * L.qkv.rows));
  ref::LinearParams p;
  p.x = x; p.w = L.qkv.data(); p.bias = L.qkv_bias.data(); p.y = y.data();
  p.M = n; p.N = L.qkv.rows; p.K = H;
  ref::linear(p);
  return y;
}

std::unique_ptr<Engine> make_engine(const ModelConfig& c, std::shared_ptr<const ModelWeights> w, const CalibOptions& o) {
  BackendOptions bo;
  bo.threads = o.threads;
  std::unique_ptr<Backend> be;
  if (o.backend == "cpu") be = make_cpu_backend(bo);
#if LING_HAS_CUDA
  else if (o.backend == "cuda") be = make_cuda_backend(bo);
#endif
  else LING_THROW("--backend: '", o.backend, "' is not available (cpu", LING_HAS_CUDA ? ", cuda" : "", ")");
  return std::make_unique<Engine>(c, std::move(w), std::move(be));
}

}  // namespace

Calibration calibrate(const CalibOptions& opt, const std::function<void(const std::string&)>& log_fn) {
  auto log = [&](const std::string& s) { if (log_fn) log_fn(s); };
  LING_CHECK(opt.tokens > 0 && opt.seq_len > 0, "--tokens and --seq-len must be positive");
  ModelConfig cfg = load_config(opt.model);
  const int64_t H = cfg.hidden_size, nh = cfg.num_attention_heads, nkv = cfg.num_key_value_heads, d = cfg.head_dim;
  std::vector<int> gqa;
  for (const auto& l : cfg.layers)
    if (!l.mtp && l.attn == AttnKind::GQA) gqa.push_back(l.index);
  LING_CHECK(!gqa.empty(), opt.model, ": the model has no GQA layers to calibrate");
  LING_CHECK(opt.seq_len <= cfg.max_position_embeddings, "--seq-len ", opt.seq_len, " exceeds max_position_embeddings ",
             cfg.max_position_embeddings);

  const fs::path dir = fs::is_directory(opt.model) ? fs::path(opt.model) : fs::path(opt.model).parent_path();
  const fs::path tok_path = dir / "tokenizer.json";
  LING_CHECK(fs::exists(tok_path), tok_path.string(), ": no tokenizer.json (calibration tokenises --data with it)");
  Tokenizer tok = Tokenizer::load(tok_path.string());
  const std::string text = read_file(opt.data);
  const auto windows = token_windows(tok, text, opt.data, opt.tokens, opt.seq_len, "--tokens");

  Checkpoint ck = Checkpoint::open(dir.string());
  auto weights = std::make_shared<ModelWeights>(load_weights(cfg, ck));
  Calibration cal;
  cal.meta = {{"format", "ling-calib-1"}, {"fingerprint", convert::model_fingerprint(cfg, ck)},
              {"qk_method", convert::qk_method_name(opt.method)}, {"tokens", std::to_string(opt.tokens)},
              {"seq_len", std::to_string(opt.seq_len)}, {"data_sha256", sha256_hex(text)},
              {"model", opt.model}, {"rms_norm_eps", std::to_string(cfg.rms_norm_eps)}};
  for (int l : gqa) {
    cal.layers[l].qk.init(nh, nkv, d, cfg.rope_dim());
    cal.layers[l].cov.kv = convert::MatD(2 * nkv * d, 2 * nkv * d);
    if (opt.q_cov) cal.layers[l].cov.q = convert::MatD(nh * d, nh * d);
  }

  // Pass 1: the model with its QK-norm.
  const ref::RopeFreqs rf = ref::rope_freqs(rope_freq_params(cfg));
  QkAccumulator acc(cfg, rf, opt.logit_rows);
  const auto t0 = std::chrono::steady_clock::now();
  {
    auto eng = make_engine(cfg, weights, opt);
    AttnInputObserver obs(cfg, [&](int l, const float* x, int64_t n) {
      const LayerWeights& L = weights->layers[size_t(l)];
      std::vector<float> qkv = project(L, x, n, H);
      convert::QkStats& s = cal.layers[l].qk;
      acc.add(s, qkv.data(), n, L.q_norm.data(), L.k_norm.data());
      if (opt.method == convert::QkMethod::Lsq) acc.add_refit(s, x, qkv.data(), n, L.q_norm.data(), L.k_norm.data());
    });
    for (size_t i = 0; i < windows.size(); ++i) {
      auto seq = eng->new_sequence();
      eng->prefill(*seq, windows[i], false, &obs);
    }
  }
  log("pass 1 (QK statistics): " + std::to_string(opt.tokens) + " tokens in " +
      std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) + " s");

  // Pass 2: fuse the QK-norm with the chosen method; gather K/V (and q) covariances of the fused model.
  ModelConfig cfg2 = cfg;
  std::map<int, LayerWeights> orig;  // lsq: the normed layers, for the pass-2 temperature statistics
  if (opt.method == convert::QkMethod::Lsq)
    for (int l : gqa) {
      const LayerWeights& L = weights->layers[size_t(l)];
      orig[l].qkv = L.qkv; orig[l].qkv_bias = L.qkv_bias; orig[l].q_norm = L.q_norm; orig[l].k_norm = L.k_norm;
    }
  if (cfg.use_qk_norm) {
    for (int l : gqa) {
      LayerWeights& L = weights->layers[size_t(l)];
      if (opt.method == convert::QkMethod::Lsq) {
        LING_CHECK(L.qkv_bias.empty(), opt.model, ": --qk-method lsq does not support qkv biases");
        convert::refit_qk(L.qkv.v.data(), H, nh, nkv, d, cal.layers[l].qk);
        L.q_norm = Mat{};
        L.k_norm = Mat{};
        continue;
      }
      const convert::QkScales sc = convert::qk_scales(cal.layers[l].qk, opt.method, cfg.rms_norm_eps);
      convert::fold_qk_norm(L.qkv.v.data(), L.qkv_bias.empty() ? nullptr : L.qkv_bias.v.data(), H, nh, nkv, d,
                            L.q_norm.data(), L.k_norm.data(), sc);
      L.q_norm = Mat{};
      L.k_norm = Mat{};
    }
    cfg2.use_qk_norm = false;
  }
  const auto t1 = std::chrono::steady_clock::now();
  {
    auto eng = make_engine(cfg2, weights, opt);
    const int64_t L2 = 2 * nkv * d;
    AttnInputObserver obs(cfg2, [&](int l, const float* x, int64_t n) {
      const LayerWeights& L = weights->layers[size_t(l)];
      std::vector<float> qkv = project(L, x, n, H);
      auto o = orig.find(l);
      if (o != orig.end()) {
        std::vector<float> qkv0 = project(o->second, x, n, H);
        acc.add_temperature(cal.layers[l].qk, qkv0.data(), qkv.data(), n, o->second.q_norm.data(),
                            o->second.k_norm.data());
      }
      const int64_t W = (nh + 2 * nkv) * d;
      std::vector<double> z(static_cast<size_t>(n * L2)), q;
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < L2; ++j) z[size_t(t * L2 + j)] = qkv[size_t(t * W + nh * d + j)];
      LayerCalibration& lc = cal.layers[l];
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(L2), int(n), 1.0, z.data(), int(L2), 1.0,
                  lc.cov.kv.v.data(), int(L2));
      if (opt.q_cov) {
        const int64_t Q = nh * d;
        q.resize(size_t(n * Q));
        for (int64_t t = 0; t < n; ++t)
          for (int64_t j = 0; j < Q; ++j) q[size_t(t * Q + j)] = qkv[size_t(t * W + j)];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(Q), int(n), 1.0, q.data(), int(Q), 1.0,
                    lc.cov.q.v.data(), int(Q));
      }
      lc.cov.tokens += double(n);
    });
    for (size_t i = 0; i < windows.size(); ++i) {
      auto seq = eng->new_sequence();
      eng->prefill(*seq, windows[i], false, &obs);
    }
  }
  for (auto& [l, lc] : cal.layers)
    for (convert::MatD* m : {&lc.cov.kv, &lc.cov.q})
      for (int64_t a = 0; a < m->rows; ++a)
        for (int64_t b = 0; b < a; ++b) (*m)(a, b) = (*m)(b, a);
  log("pass 2 (K/V covariances, QK-norm fused by " + std::string(convert::qk_method_name(opt.method)) + "): " +
      std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count()) + " s");
  return cal;
}

}  // namespace ling::calib
