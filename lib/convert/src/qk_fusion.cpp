// Constants for QK-norm fusion from calibration sums, and the fold into the qkv projection (conversion.md §4).
#include "ling/convert/qk_fusion.h"

#include <cmath>

#include "ling/core/error.h"

namespace ling::convert {

const char* qk_method_name(QkMethod m) {
  switch (m) {
    case QkMethod::Ant: return "ant";
    case QkMethod::InvRms: return "inv-rms";
    case QkMethod::VecMse: return "vec-mse";
    case QkMethod::Logit: return "logit";
    case QkMethod::Kl: return "kl";
  }
  return "?";
}

std::vector<QkMethod> all_qk_methods() {
  return {QkMethod::Ant, QkMethod::InvRms, QkMethod::VecMse, QkMethod::Logit, QkMethod::Kl};
}

QkMethod parse_qk_method(const std::string& name) {
  for (QkMethod m : all_qk_methods())
    if (name == qk_method_name(m)) return m;
  LING_THROW("--qk-method: '", name, "' is not one of ant, inv-rms, vec-mse, logit, kl");
}

double kl_grid_multiplier(int i) { return std::exp2(-2.0 + 4.0 * double(i) / double(kKlGrid - 1)); }

void QkStats::init(int64_t nh_, int64_t nkv_, int64_t d_, int64_t rd_) {
  nh = nh_; nkv = nkv_; d = d_;
  tokens = pairs = kl_rows = 0;
  for (auto* v : {&q_sumsq, &q_sum_s, &q_sum_g2s, &q_sum_g2, &logit_xy, &logit_yy, &kl_ref}) v->assign(size_t(nh), 0.0);
  for (auto* v : {&k_sumsq, &k_sum_s, &k_sum_g2s, &k_sum_g2}) v->assign(size_t(nkv), 0.0);
  kl_sum.assign(size_t(nh * kKlGrid), 0.0);
  rot_cos.assign(size_t(nh * (rd_ / 2)), 0.0);
  rot_sin.assign(size_t(nh * (rd_ / 2)), 0.0);
}

namespace {

// Minimiser of the KL curve of one head: the best grid point refined by a parabola through its neighbours in
// log2 scale (kept inside the grid).
double kl_best_product(const QkStats& s, int64_t h) {
  const double* kl = s.kl_sum.data() + h * kKlGrid;
  int best = 0;
  for (int i = 1; i < kKlGrid; ++i)
    if (kl[i] < kl[best]) best = i;
  const double step = 4.0 / double(kKlGrid - 1);
  double u = -2.0 + step * best;
  if (best > 0 && best < kKlGrid - 1) {
    const double a = kl[best - 1], b = kl[best], c = kl[best + 1];
    const double den = a - 2 * b + c;
    if (den > 0) u += step * 0.5 * (a - c) / den;
  }
  return s.kl_ref[size_t(h)] * std::exp2(u);
}

}  // namespace

QkScales qk_scales(const QkStats& s, QkMethod m, double eps) {
  LING_CHECK(s.tokens > 0, "calibration holds no tokens for QK-norm statistics");
  QkScales c;
  c.q.assign(size_t(s.nh), 0.0);
  c.k.assign(size_t(s.nkv), 0.0);
  const double N = s.tokens, d = double(s.d);
  const int64_t G = s.nh / s.nkv;
  auto inv_rms_k = [&](int64_t g) { return s.k_sum_s[size_t(g)] / N; };
  switch (m) {
    case QkMethod::Ant: {
      double sq = 0, sk = 0;
      for (double v : s.q_sumsq) sq += v;
      for (double v : s.k_sumsq) sk += v;
      const double cq = 1.0 / std::sqrt(sq / (N * d * double(s.nh)) + eps);
      const double ck = 1.0 / std::sqrt(sk / (N * d * double(s.nkv)) + eps);
      for (auto& v : c.q) v = cq;
      for (auto& v : c.k) v = ck;
      break;
    }
    case QkMethod::InvRms:
      for (int64_t h = 0; h < s.nh; ++h) c.q[size_t(h)] = s.q_sum_s[size_t(h)] / N;
      for (int64_t g = 0; g < s.nkv; ++g) c.k[size_t(g)] = inv_rms_k(g);
      break;
    case QkMethod::VecMse:
      for (int64_t h = 0; h < s.nh; ++h) c.q[size_t(h)] = s.q_sum_g2s[size_t(h)] / s.q_sum_g2[size_t(h)];
      for (int64_t g = 0; g < s.nkv; ++g) c.k[size_t(g)] = s.k_sum_g2s[size_t(g)] / s.k_sum_g2[size_t(g)];
      break;
    case QkMethod::Logit:
    case QkMethod::Kl:
      for (int64_t g = 0; g < s.nkv; ++g) c.k[size_t(g)] = inv_rms_k(g);
      for (int64_t h = 0; h < s.nh; ++h) {
        double prod = 0;
        if (m == QkMethod::Logit) {
          LING_CHECK(s.logit_yy[size_t(h)] > 0, "calibration holds no attention-logit pairs for head ", h);
          prod = s.logit_xy[size_t(h)] / s.logit_yy[size_t(h)];
        } else {
          LING_CHECK(s.kl_rows > 0 && s.kl_ref[size_t(h)] > 0, "calibration holds no KL rows for head ", h);
          prod = kl_best_product(s, h);
        }
        c.q[size_t(h)] = prod / c.k[size_t(h / G)];
      }
      break;
  }
  for (double v : c.q) LING_CHECK(std::isfinite(v) && v > 0, "QK-norm fusion: non-positive query constant");
  for (double v : c.k) LING_CHECK(std::isfinite(v) && v > 0, "QK-norm fusion: non-positive key constant");
  return c;
}

void fold_qk_norm(float* qkv, float* bias, int64_t H, int64_t nh, int64_t nkv, int64_t d, const float* gamma_q,
                  const float* gamma_k, const QkScales& c) {
  auto fold = [&](int64_t row0, int64_t heads, const float* gamma, const std::vector<double>& scale) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < d; ++j) {
        const int64_t row = row0 + h * d + j;
        const double f = scale[size_t(h)] * double(gamma ? gamma[j] : 1.0f);
        float* w = qkv + row * H;
        for (int64_t i = 0; i < H; ++i) w[i] = float(double(w[i]) * f);
        if (bias) bias[row] = float(double(bias[row]) * f);
      }
  };
  fold(0, nh, gamma_q, c.q);
  fold(nh * d, nkv, gamma_k, c.k);
}

}  // namespace ling::convert
