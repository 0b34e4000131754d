// Calibration file I/O (safetensors, F64) and the model fingerprint.
#include "ling/convert/calibration.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"
#include "ling/core/hash.h"
#include "ling/core/safetensors.h"
#include "ling/model/config.h"

namespace ling::convert {

namespace {

struct F64Tensor {
  std::vector<int64_t> shape;
  const double* data;
  size_t n;
};

void put(std::map<std::string, F64Tensor>& out, const std::string& name, const std::vector<double>& v,
         std::vector<int64_t> shape = {}) {
  if (shape.empty()) shape = {int64_t(v.size())};
  out[name] = F64Tensor{shape, v.data(), v.size()};
}

std::vector<double> get(const SafetensorsFile& f, const std::string& name, size_t expect, bool required = true) {
  const TensorInfo* t = f.find(name);
  if (!t) {
    LING_CHECK(!required, f.path(), ": missing calibration tensor '", name, "'");
    return {};
  }
  LING_CHECK(t->dtype == DType::F64, f.path(), ": tensor '", name, "' is ", dtype_name(t->dtype), ", expected F64");
  LING_CHECK(expect == 0 || size_t(t->numel()) == expect, f.path(), ": tensor '", name, "' holds ", t->numel(),
             " values, expected ", expect);
  std::vector<double> v(size_t(t->numel()));
  std::memcpy(v.data(), t->data, t->nbytes());
  return v;
}

}  // namespace

void save_calibration(const std::string& path, const Calibration& c) {
  std::map<std::string, F64Tensor> ts;
  std::vector<std::vector<double>> keep;  // owns the small count vectors until written
  keep.reserve(c.layers.size() * 3);
  for (const auto& [layer, lc] : c.layers) {
    const std::string p = "layer." + std::to_string(layer) + ".";
    const QkStats& s = lc.qk;
    put(ts, p + "qk.q_sumsq", s.q_sumsq); put(ts, p + "qk.k_sumsq", s.k_sumsq);
    put(ts, p + "qk.q_sum_s", s.q_sum_s); put(ts, p + "qk.k_sum_s", s.k_sum_s);
    put(ts, p + "qk.q_sum_g2s", s.q_sum_g2s); put(ts, p + "qk.k_sum_g2s", s.k_sum_g2s);
    put(ts, p + "qk.q_sum_g2", s.q_sum_g2); put(ts, p + "qk.k_sum_g2", s.k_sum_g2);
    put(ts, p + "qk.logit_xy", s.logit_xy); put(ts, p + "qk.logit_yy", s.logit_yy);
    put(ts, p + "qk.kl_ref", s.kl_ref);
    put(ts, p + "qk.kl_sum", s.kl_sum, {s.nh, kKlGrid});
    if (!s.xx.empty()) {
      put(ts, p + "qk.xx", s.xx);
      put(ts, p + "qk.xy", s.xy);
    }
    if (!s.t_kl.empty()) {
      put(ts, p + "qk.t_kl", s.t_kl, {s.nh, kKlGrid});
      keep.push_back({s.t_rows});
      put(ts, p + "qk.t_rows", keep.back());
    }
    if (!s.rot_cos.empty()) {
      put(ts, p + "qk.rot_cos", s.rot_cos, {s.nh, int64_t(s.rot_cos.size()) / s.nh});
      put(ts, p + "qk.rot_sin", s.rot_sin, {s.nh, int64_t(s.rot_sin.size()) / s.nh});
    }
    keep.push_back({s.tokens, s.pairs, s.kl_rows});
    put(ts, p + "qk.counts", keep.back());
    put(ts, p + "kv_cov", lc.cov.kv.v, {lc.cov.kv.rows, lc.cov.kv.cols});
    if (!lc.cov.q.v.empty()) put(ts, p + "q_cov", lc.cov.q.v, {lc.cov.q.rows, lc.cov.q.cols});
    keep.push_back({lc.cov.tokens});
    put(ts, p + "kv_tokens", keep.back());
  }
  SafetensorsWriter w(path, c.meta);
  for (const auto& [name, t] : ts) w.declare(name, DType::F64, t.shape);
  for (const auto& [name, t] : ts) w.write(name, t.data, t.n * sizeof(double));
  w.finish();
}

Calibration load_calibration(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  Calibration c;
  c.meta = f->metadata();
  auto fmt = c.meta.find("format");
  LING_CHECK(fmt != c.meta.end() && fmt->second == "ling-calib-1", path,
             ": not a ling calibration file (metadata 'format' is not ling-calib-1)");
  for (const auto& t : f->tensors()) {
    const std::string& n = t.name;
    if (n.rfind("layer.", 0) != 0 || n.size() < 10 || n.compare(n.size() - 10, 10, ".qk.counts") != 0) continue;
    const int layer = std::stoi(n.substr(6, n.find('.', 6) - 6));
    const std::string p = "layer." + std::to_string(layer) + ".";
    LayerCalibration lc;
    QkStats& s = lc.qk;
    const TensorInfo* kl = f->find(p + "qk.kl_sum");
    const TensorInfo* kq = f->find(p + "qk.k_sumsq");
    const TensorInfo* kv = f->find(p + "kv_cov");
    LING_CHECK(kl && kq && kv && kl->shape.size() == 2 && kv->shape.size() == 2, path, ": layer ", layer,
               " is missing qk.kl_sum, qk.k_sumsq or kv_cov");
    const int64_t nh = kl->shape[0], nkv = kq->numel(), L2 = kv->shape[0];
    LING_CHECK(nkv > 0 && L2 % (2 * nkv) == 0, path, ": layer ", layer, ": kv_cov size ", L2, " does not fit ",
               nkv, " KV heads");
    s.init(nh, nkv, L2 / (2 * nkv));
    const size_t uh = size_t(nh), uk = size_t(nkv);
    s.q_sumsq = get(*f, p + "qk.q_sumsq", uh); s.k_sumsq = get(*f, p + "qk.k_sumsq", uk);
    s.q_sum_s = get(*f, p + "qk.q_sum_s", uh); s.k_sum_s = get(*f, p + "qk.k_sum_s", uk);
    s.q_sum_g2s = get(*f, p + "qk.q_sum_g2s", uh); s.k_sum_g2s = get(*f, p + "qk.k_sum_g2s", uk);
    s.q_sum_g2 = get(*f, p + "qk.q_sum_g2", uh); s.k_sum_g2 = get(*f, p + "qk.k_sum_g2", uk);
    s.logit_xy = get(*f, p + "qk.logit_xy", uh); s.logit_yy = get(*f, p + "qk.logit_yy", uh);
    s.kl_ref = get(*f, p + "qk.kl_ref", uh);
    s.kl_sum = get(*f, p + "qk.kl_sum", uh * kKlGrid);
    s.rot_cos = get(*f, p + "qk.rot_cos", 0, false);
    s.xx = get(*f, p + "qk.xx", 0, false);
    s.xy = get(*f, p + "qk.xy", 0, false);
    s.t_kl = get(*f, p + "qk.t_kl", 0, false);
    if (!s.t_kl.empty()) s.t_rows = get(*f, p + "qk.t_rows", 1)[0];
    s.rot_sin = get(*f, p + "qk.rot_sin", s.rot_cos.size(), !s.rot_cos.empty());
    std::vector<double> counts = get(*f, p + "qk.counts", 3);
    s.tokens = counts[0]; s.pairs = counts[1]; s.kl_rows = counts[2];
    lc.cov.kv.rows = lc.cov.kv.cols = L2;
    lc.cov.kv.v = get(*f, p + "kv_cov", size_t(L2 * L2));
    const int64_t qd = nh * s.d;
    lc.cov.q.v = get(*f, p + "q_cov", size_t(qd * qd), false);
    if (!lc.cov.q.v.empty()) lc.cov.q.rows = lc.cov.q.cols = qd;
    lc.cov.tokens = get(*f, p + "kv_tokens", 1)[0];
    c.layers[layer] = std::move(lc);
  }
  LING_CHECK(!c.layers.empty(), path, ": the calibration file holds no layer statistics");
  return c;
}

std::string model_fingerprint(const ModelConfig& c, const Checkpoint& ckpt) {
  nlohmann::json j = {{"architecture", c.architecture}, {"hidden_size", c.hidden_size},
                      {"layers", c.num_hidden_layers}, {"heads", c.num_attention_heads},
                      {"kv_heads", c.num_key_value_heads}, {"head_dim", c.head_dim},
                      {"rope_dim", c.rope_dim()}, {"rope_theta", c.rope_theta}, {"vocab", c.vocab_size}};
  std::string bytes = j.dump();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const TensorInfo* t = ckpt.find("model.layers." + std::to_string(l) + ".attention.query_key_value.weight");
    if (!t) continue;
    bytes.append(reinterpret_cast<const char*>(t->data), std::min<size_t>(t->nbytes(), 65536));
  }
  return sha256_hex(bytes);
}

}  // namespace ling::convert
