// The streaming checkpoint converter behind `ling convert` (see convert.h).
#include "ling/convert/convert.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "ling/convert/calibration.h"
#include "ling/convert/mla.h"
#include "ling/core/dtype.h"
#include "ling/core/error.h"
#include "ling/core/fs.h"
#include "ling/core/safetensors.h"
#include "ling/model/config.h"
#include "ling/model/schema.h"
#include "stream_io.h"

namespace ling::convert {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string attn(int layer, const std::string& t) {
  return "model.layers." + std::to_string(layer) + ".attention." + t;
}


MatD mat_rows(const std::vector<float>& w, int64_t row0, int64_t n, int64_t cols) {
  MatD m(n, cols);
  for (int64_t i = 0; i < n * cols; ++i) m.v[size_t(i)] = double(w[size_t(row0 * cols + i)]);
  return m;
}

// Output config.json: the source config with the V2_5 architecture and the MLA/Lightning keys set.
json output_config(const json& src, const ModelConfig& c, const ConvertOptions& opt, int64_t group_norm) {
  json j = src;
  j["architectures"] = {"BailingMoeV2_5ForCausalLM"};
  j["model_type"] = "bailing_hybrid";
  j["auto_map"] = {{"AutoConfig", "configuration_bailing_moe_v2_5.BailingMoeV2_5Config"},
                   {"AutoModel", "modeling_bailing_moe_v2_5.BailingMoeV2_5Model"},
                   {"AutoModelForCausalLM", "modeling_bailing_moe_v2_5.BailingMoeV2_5ForCausalLM"}};
  j["layer_group_size"] = opt.to == "mla" ? 1 : opt.layer_group_size;
  j["group_norm_size"] = group_norm;
  j["linear_silu"] = false;
  j["kv_lora_rank"] = opt.kv_lora_rank;
  j["q_lora_rank"] = opt.q_lora_rank > 0 ? json(opt.q_lora_rank) : json(nullptr);
  j["qk_rope_head_dim"] = c.rope_dim();
  j["qk_nope_head_dim"] = c.head_dim;
  j["v_head_dim"] = c.head_dim;
  j["rope_interleave"] = true;
  j["head_dim"] = c.head_dim;
  j["num_nextn_predict_layers"] = 0;
  // Keys the released BailingMoeV2_5 configs carry (the routing is the same sigmoid + bias group top-k).
  if (!j.contains("scoring_func")) j["scoring_func"] = j.value("score_function", std::string("sigmoid"));
  if (!j.contains("topk_method")) j["topk_method"] = "noaux_tc";
  if (opt.to == "mla") j["use_qk_norm"] = false;
  return j;
}

// Statistics of one layer from the weights alone: normalised input with covariance diag(γ_in²), one token.
LayerCalibration data_free_stats(const std::vector<float>& qkv, const std::vector<float>& gamma_in, int64_t H,
                                 int64_t nh, int64_t nkv, int64_t d) {
  LayerCalibration lc;
  lc.qk.init(nh, nkv, d);
  lc.qk.tokens = 1;
  auto sumsq = [&](int64_t row0, int64_t n) {
    double s = 0;
    for (int64_t r = row0; r < row0 + n; ++r)
      for (int64_t i = 0; i < H; ++i) {
        const double w = double(qkv[size_t(r * H + i)]) * gamma_in[size_t(i)];
        s += w * w;
      }
    return s;
  };
  for (int64_t h = 0; h < nh; ++h) lc.qk.q_sumsq[size_t(h)] = sumsq(h * d, d);
  for (int64_t g = 0; g < nkv; ++g) lc.qk.k_sumsq[size_t(g)] = sumsq((nh + g) * d, d);
  return lc;
}

// Covariances of the fused projections from the weights alone (see data_free_stats).
KvCovariance data_free_cov(const std::vector<float>& fused, const std::vector<float>& gamma_in, int64_t H,
                           int64_t nh, int64_t nkv, int64_t d) {
  // W·diag(γ²)·Wᵀ with the diagonal applied to W's columns (no dense H×H matrix).
  auto cov = [&](int64_t row0, int64_t n) {
    const MatD w = mat_rows(fused, row0, n, H);
    MatD wg = w;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < H; ++i) wg(r, i) *= double(gamma_in[size_t(i)]) * gamma_in[size_t(i)];
    return matmul(wg, transpose(w));
  };
  KvCovariance c;
  c.kv = cov(nh * d, 2 * nkv * d);
  c.q = cov(0, nh * d);
  c.tokens = 1;
  return c;
}

// Rescale pass-2 covariances gathered under one fusion to another: k and q are per-head multiples.
void rescale_cov(KvCovariance& cov, const QkScales& from, const QkScales& to, int64_t nh, int64_t nkv, int64_t d) {
  const int64_t L = nkv * d;
  std::vector<double> f(size_t(2 * L), 1.0);
  for (int64_t j = 0; j < L; ++j) f[size_t(j)] = to.k[size_t(j / d)] / from.k[size_t(j / d)];
  for (int64_t a = 0; a < 2 * L; ++a)
    for (int64_t b = 0; b < 2 * L; ++b) cov.kv(a, b) *= f[size_t(a)] * f[size_t(b)];
  if (cov.q.rows == nh * d)
    for (int64_t a = 0; a < nh * d; ++a)
      for (int64_t b = 0; b < nh * d; ++b)
        cov.q(a, b) *= (to.q[size_t(a / d)] / from.q[size_t(a / d)]) * (to.q[size_t(b / d)] / from.q[size_t(b / d)]);
}

double peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0;
}

}  // namespace

json convert_checkpoint(const ConvertOptions& opt, const std::function<void(const std::string&)>& log_fn) {
  auto log = [&](const std::string& s) { if (log_fn) log_fn(s); };
  const auto t0 = std::chrono::steady_clock::now();
  LING_CHECK(opt.to == "mla" || opt.to == "hybrid", "--to: '", opt.to, "' is not mla or hybrid");
  const fs::path in(opt.in), out(opt.out);
  LING_CHECK(fs::is_directory(in), opt.in, ": not a model folder (config.json + safetensors)");
  ModelConfig cfg = load_config((in / "config.json").string());
  LING_CHECK(cfg.family != Family::Ling25 && cfg.family != Family::DeepseekV3, opt.in, ": already an MLA model (",
             cfg.architecture, "); convert takes a Ling 2.0 BailingMoeV2 GQA checkpoint");
  LING_CHECK(cfg.family == Family::Ling2, opt.in, ": ", cfg.architecture,
             " is not a Ling 2.0 BailingMoeV2 GQA checkpoint (the only source convert takes)");
  const int64_t H = cfg.hidden_size, nh = cfg.num_attention_heads, nkv = cfg.num_key_value_heads;
  const int64_t d = cfg.head_dim, rd = cfg.rope_dim(), NL = cfg.num_hidden_layers;
  LING_CHECK(opt.kv_lora_rank >= 1 && opt.kv_lora_rank <= max_kv_lora_rank(nkv, d, rd), "--kv-lora-rank ",
             opt.kv_lora_rank, " is outside [1, ", max_kv_lora_rank(nkv, d, rd), "] for ", opt.in,
             ": the latent holds 2·nkv·head_dim − rope_dim = ", max_kv_lora_rank(nkv, d, rd),
             " values once the RoPE part (", rd, " dims) is split off");
  LING_CHECK(opt.q_lora_rank >= 0 && opt.q_lora_rank <= nh * d, "--q-lora-rank ", opt.q_lora_rank,
             " is outside [0, nh·head_dim = ", nh * d, "]");
  LING_CHECK(opt.to == "mla" || opt.layer_group_size >= 2, "--layer-group-size must be at least 2 for --to hybrid");
  LING_CHECK(opt.to == "mla" || cfg.use_qkv_bias == cfg.use_bias, opt.in,
             ": use_qkv_bias and use_bias differ; a Lightning layer's dense bias follows use_bias");
  LING_CHECK(opt.balance_kv_ratio > 0, "--balance-kv-ratio must be positive");
  LING_CHECK(!fs::exists(out) || opt.force, opt.out, ": exists (pass --force to replace it)");
  LING_CHECK(out.has_parent_path() == false || fs::is_directory(out.parent_path()), opt.out,
             ": parent folder does not exist");
  Checkpoint ck = Checkpoint::open(opt.in);

  std::optional<Calibration> cal;
  QkMethod method = QkMethod::Ant;
  std::optional<QkMethod> cal_method;
  if (!opt.calib.empty()) {
    cal = load_calibration(opt.calib);
    const std::string fp = model_fingerprint(cfg, ck);
    LING_CHECK(cal->meta["fingerprint"] == fp, opt.calib, ": calibration file was made for another model (fingerprint ",
               cal->meta["fingerprint"].substr(0, 12), "…, ", opt.in, " has ", fp.substr(0, 12), "…)");
    cal_method = parse_qk_method(cal->meta["qk_method"]);
    method = opt.qk_method.value_or(*cal_method);
  } else {
    LING_CHECK(!opt.qk_method || *opt.qk_method == QkMethod::Ant, "--qk-method ", qk_method_name(*opt.qk_method),
               " needs a calibration file (--calib); only ant works from the weights alone");
  }

  int64_t group_norm = opt.group_norm_size;
  if (group_norm == 0) group_norm = (nh * d) % 4 == 0 ? 4 : 1;
  if (cfg.num_nextn_predict_layers > 0)
    log(opt.in + ": its " + std::to_string(cfg.num_nextn_predict_layers) +
        " MTP layer(s) are not converted (the output has num_nextn_predict_layers 0)");
  const json src_cfg = json::parse(read_file((in / "config.json").string()));
  const json out_cfg = output_config(src_cfg, cfg, opt, group_norm);
  ModelConfig ocfg = parse_config(out_cfg.dump(), (out / "config.json").string());
  // MLA softmax scale d_qk^−½·mscale² vs the GQA hd^−½ (architecture.md §2.7 step 5): fold the ratio into q.
  double mscale2 = 1.0;
  if (cfg.rope_scaling && cfg.rope_scaling->mscale_all_dim.value_or(0.0) != 0.0 && cfg.rope_scaling->factor > 1.0) {
    const double m = 0.1 * *cfg.rope_scaling->mscale_all_dim * std::log(cfg.rope_scaling->factor) + 1.0;
    mscale2 = m * m;
  }
  const double query_scale = (1.0 / std::sqrt(double(d))) / (mscale2 / std::sqrt(double(d + rd)));

  // Plan: every output tensor from the schema; copies keep their dtype, generated ones take the qkv dtype.
  const std::vector<TensorSpec> schema = tensor_schema(ocfg);
  std::map<std::string, const TensorInfo*> copies;
  const std::string tmp = opt.out + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  TempDir guard(tmp);
  std::map<std::string, std::string> st_meta{{"format", "pt"}};
  SafetensorsWriter w((fs::path(tmp) / "model.safetensors").string(), st_meta);
  std::map<std::string, DType> gen_dtype;
  for (const TensorSpec& s : schema) {
    const bool is_attn = s.name.find(".attention.") != std::string::npos && s.name.find(".dense.") == std::string::npos;
    const bool keep_attn = is_attn && ocfg.layers[size_t(s.layer)].attn == AttnKind::Lightning &&
                           (s.name.find("layernorm") != std::string::npos);
    if (!is_attn || keep_attn) {
      const TensorInfo* t = ck.find(s.name);
      LING_CHECK(t || !s.required, opt.in, ": missing tensor '", s.name, "'");
      if (!t) continue;
      LING_CHECK(t->shape == s.shape, opt.in, ": tensor '", s.name, "' has shape ", t->shape_str(),
                 ", the converted model needs ", shape_string(s.shape));
      copies[s.name] = t;
      w.declare(s.name, t->dtype, s.shape);
    } else {
      const TensorInfo& q = ck.get(attn(s.layer, "query_key_value.weight"));
      LING_CHECK(dtype_is_float(q.dtype) && q.dtype != DType::F8_E4M3 && q.dtype != DType::F8_E5M2, opt.in,
                 ": tensor '", q.name, "' is ", dtype_name(q.dtype), "; convert reads F32/BF16/F16 attention weights");
      gen_dtype[s.name] = q.dtype;
      w.declare(s.name, q.dtype, s.shape);
    }
  }

  json report = json::array();
  double bytes_read = 0, bytes_written = 0;
  for (int64_t l = 0; l < NL; ++l) {
    const AttnKind kind = ocfg.layers[size_t(l)].attn;
    const TensorInfo& tq = ck.get(attn(int(l), "query_key_value.weight"));
    std::vector<float> qkv = tq.to_f32();
    std::vector<float> qkv_b;
    if (cfg.use_qkv_bias) qkv_b = ck.get(attn(int(l), "query_key_value.bias")).to_f32();
    bytes_read += double(tq.nbytes());
    release_pages(tq);
    json row = {{"layer", l}, {"kind", attn_kind_name(kind)}};
    auto emit = [&](const std::string& t, const std::vector<double>& v) {
      const std::string name = attn(int(l), t);
      std::vector<std::byte> b = encode(v, gen_dtype.at(name));
      w.write(name, b.data(), b.size());
      bytes_written += double(b.size());
    };
    if (kind == AttnKind::Lightning) {
      std::vector<float> x(static_cast<size_t>(3 * nh * d * H));
      expand_qkv_to_mha(qkv.data(), H, nh, nkv, d, x.data());
      emit("query_key_value.weight", std::vector<double>(x.begin(), x.end()));
      if (!qkv_b.empty()) {
        std::vector<float> xb(static_cast<size_t>(3 * nh * d));
        expand_qkv_to_mha(qkv_b.data(), 1, nh, nkv, d, xb.data());
        emit("query_key_value.bias", std::vector<double>(xb.begin(), xb.end()));
      }
      emit("g_proj.weight", std::vector<double>(size_t(nh * d * H), 0.0));
      emit("g_norm.weight", std::vector<double>(size_t(nh * d), 1.0));
      row["init"] = "qkv: KV heads copied to their query heads; g_proj 0 (gate 0.5); g_norm 1; QK-norm kept";
    } else {
      std::vector<float> gq, gk;
      if (cfg.use_qk_norm) {
        gq = ck.get(attn(int(l), "query_layernorm.weight")).to_f32();
        gk = ck.get(attn(int(l), "key_layernorm.weight")).to_f32();
      }
      const std::vector<float> gin = ck.get("model.layers." + std::to_string(l) + ".input_layernorm.weight").to_f32();
      LayerCalibration lc;
      if (cal) {
        auto it = cal->layers.find(int(l));
        LING_CHECK(it != cal->layers.end(), opt.calib, ": no statistics for layer ", l);
        lc = it->second;
        LING_CHECK(lc.qk.nh == nh && lc.qk.nkv == nkv && lc.qk.d == d, opt.calib, ": layer ", l,
                   " statistics have other head counts than ", opt.in);
      } else {
        lc = data_free_stats(qkv, gin, H, nh, nkv, d);
      }
      std::vector<float> fused = qkv, fused_b = qkv_b;
      QkScales sc{std::vector<double>(size_t(nh), 1.0), std::vector<double>(size_t(nkv), 1.0)};
      if (cfg.use_qk_norm) {
        sc = qk_scales(lc.qk, method, cfg.rms_norm_eps);
        LING_CHECK((method == QkMethod::Lsq) == (cal_method == QkMethod::Lsq) || !cal, opt.calib,
                   ": QK method lsq and the calibration's pass-2 method must agree (calibrate with --qk-method ",
                   qk_method_name(method), ")");
        if (method == QkMethod::Lsq) {
          LING_CHECK(fused_b.empty(), opt.in, ": --qk-method lsq does not support qkv biases");
          refit_qk(fused.data(), H, nh, nkv, d, lc.qk);
          const std::vector<double> temp = lsq_temperatures(lc.qk);
          rescale_cov(lc.cov, QkScales{std::vector<double>(size_t(nh), 1.0), std::vector<double>(size_t(nkv), 1.0)},
                      QkScales{temp, std::vector<double>(size_t(nkv), 1.0)}, nh, nkv, d);
          row["temperature"] = temp;
        } else
        fold_qk_norm(fused.data(), fused_b.empty() ? nullptr : fused_b.data(), H, nh, nkv, d, gq.data(), gk.data(), sc);
        if (cal && *cal_method != method && method != QkMethod::Lsq) rescale_cov(lc.cov, qk_scales(lc.qk, *cal_method, cfg.rms_norm_eps), sc, nh, nkv, d);
      }
      if (!cal) lc.cov = data_free_cov(fused, gin, H, nh, nkv, d);
      GqaLayer g;
      g.H = H; g.nh = nh; g.nkv = nkv; g.d = d; g.rd = rd;
      g.wq = mat_rows(fused, 0, nh * d, H);
      g.wk = mat_rows(fused, nh * d, nkv * d, H);
      g.wv = mat_rows(fused, (nh + nkv) * d, nkv * d, H);
      if (!fused_b.empty()) {
        g.bq.assign(fused_b.begin(), fused_b.begin() + nh * d);
        g.bk.assign(fused_b.begin() + nh * d, fused_b.begin() + (nh + nkv) * d);
        g.bv.assign(fused_b.begin() + (nh + nkv) * d, fused_b.end());
      }
      if (!lc.qk.rot_cos.empty() && lc.qk.kl_rows > 0 && !opt.no_expected_rotation) {
        g.rot_cos = lc.qk.rot_cos;
        g.rot_sin = lc.qk.rot_sin;
        for (auto& v : g.rot_cos) v /= lc.qk.kl_rows;
        for (auto& v : g.rot_sin) v /= lc.qk.kl_rows;
      }
      if (!opt.plain_pca) {
        const std::vector<float> wo = ck.get(attn(int(l), "dense.weight")).to_f32();
        g.wo = mat_rows(wo, 0, H, nh * d);
      }
      MlaOptions mo;
      mo.weighted_pca = !opt.plain_pca;
      mo.kv_lora_rank = opt.kv_lora_rank;
      mo.q_lora_rank = opt.q_lora_rank;
      mo.query_scale = query_scale;
      mo.balance_kv_ratio = opt.balance_kv_ratio;
      mo.linear_latent_norm = opt.linear_latent_norm;
      MlaLayer m = gqa_to_mla(g, lc.cov, mo);
      if (opt.q_lora_rank > 0) {
        emit("q_a_proj.weight", m.q_a.v);
        if (!m.q_a_bias.empty()) emit("q_a_proj.bias", m.q_a_bias);
        emit("q_a_layernorm.weight", m.q_a_norm);
        emit("q_b_proj.weight", m.q_b.v);
      } else {
        emit("q_proj.weight", m.q_proj.v);
        if (!m.q_proj_bias.empty()) emit("q_proj.bias", m.q_proj_bias);
      }
      emit("kv_a_proj_with_mqa.weight", m.kv_a.v);
      if (!m.kv_a_bias.empty()) emit("kv_a_proj_with_mqa.bias", m.kv_a_bias);
      emit("kv_a_layernorm.weight", m.kv_a_norm);
      emit("kv_b_proj.weight", m.kv_b.v);
      row["qk_method"] = cfg.use_qk_norm ? qk_method_name(method) : "none (no QK-norm)";
      row["c_q"] = sc.q;
      row["c_k"] = sc.k;
      row["rope_energy"] = m.rope_energy;
      row["latent_energy"] = m.latent_energy;
      row["k_rel_err"] = m.k_rel_err;
      row["v_rel_err"] = m.v_rel_err;
      row["balance_ratio"] = m.balance_ratio;
      row["expected_rotation"] = !g.rot_cos.empty();
      row["kv_pca"] = m.weighted_pca ? "weighted" : "plain";
      row["latent_norm"] = opt.linear_latent_norm ? "linear" : "rms";
      if (opt.q_lora_rank > 0) row["q_energy"] = m.q_energy;
    }
    report.push_back(row);
    log(row.dump());
  }
  for (const auto& [name, t] : copies) {
    copy_tensor(w, name, *t);
    bytes_read += double(t->nbytes());
    bytes_written += double(t->nbytes());
  }
  w.finish();

  // Side files: config, the source's tokenizer and generation files, the report.
  write_file_atomic((fs::path(tmp) / "config.json").string(), out_cfg.dump(2) + "\n");
  for (const auto& e : fs::directory_iterator(in)) {
    const std::string n = e.path().filename().string();
    // Tokenizer and generation files only: cards, metrics and modelling code describe the source model.
    const bool keep = n.starts_with("tokenizer") || n == "special_tokens_map.json" || n == "generation_config.json" ||
                      n.starts_with("chat_template") || n.starts_with("vocab") || n == "merges.txt";
    if (!e.is_regular_file() || !keep) continue;
    fs::copy_file(e.path(), fs::path(tmp) / n);
  }
  json refit;
  if (opt.finish) refit = opt.finish(tmp);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t kv_before = 2 * nkv * d, kv_after = opt.kv_lora_rank + rd;
  json full = {{"source", opt.in}, {"to", opt.to}, {"kv_lora_rank", opt.kv_lora_rank},
               {"q_lora_rank", opt.q_lora_rank}, {"layer_group_size", out_cfg["layer_group_size"]},
               {"calibration", opt.calib.empty() ? json("none (data-free: weights only)") : json(opt.calib)},
               {"qk_method", cfg.use_qk_norm ? qk_method_name(method) : "none"},
               {"kv_values_per_token_per_softmax_layer", {{"before", kv_before}, {"after", kv_after}}},
               {"trained_after_conversion", false},
               {"dropped_mtp_layers", cfg.num_nextn_predict_layers},  // MTP layers are not converted
               {"layers", report}, {"seconds", secs},
               {"bytes_read", bytes_read}, {"bytes_written", bytes_written},
               {"gb_per_s", (bytes_read + bytes_written) / 1e9 / std::max(secs, 1e-9)},
               {"peak_rss_bytes", peak_rss_bytes()}};
  if (opt.finish) full["refit"] = refit;
  write_file_atomic((fs::path(tmp) / "conversion.json").string(), full.dump(2) + "\n");
  guard.commit(opt.out, opt.force);
  return full;
}

}  // namespace ling::convert
