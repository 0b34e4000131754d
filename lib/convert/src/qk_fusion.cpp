// Constants for QK-norm fusion from calibration sums, and the fold into the qkv projection (conversion.md §4).
#include "ling/convert/qk_fusion.h"

#include <cmath>

#include "ling/convert/linalg.h"
#include "ling/core/error.h"

namespace ling::convert {

const char* qk_method_name(QkMethod m) {
  switch (m) {
    case QkMethod::Ant: return "ant";
    case QkMethod::InvRms: return "inv-rms";
    case QkMethod::VecMse: return "vec-mse";
    case QkMethod::Logit: return "logit";
    case QkMethod::Kl: return "kl";
    case QkMethod::Lsq: return "lsq";
  }
  return "?";
}

std::vector<QkMethod> all_qk_methods() {
  return {QkMethod::Ant, QkMethod::InvRms, QkMethod::VecMse, QkMethod::Logit, QkMethod::Kl, QkMethod::Lsq};
}

QkMethod parse_qk_method(const std::string& name) {
  for (QkMethod m : all_qk_methods())
    if (name == qk_method_name(m)) return m;
  LING_THROW("--qk-method: '", name, "' is not one of ant, inv-rms, vec-mse, logit, kl, lsq");
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

// Minimiser of a KL curve over the grid: the best grid point refined by a parabola through its neighbours in
// log2 scale (kept inside the grid); returns the multiplier.
double kl_best_multiplier(const double* kl) {
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
  return std::exp2(u);
}

double kl_best_product(const QkStats& s, int64_t h) {
  return s.kl_ref[size_t(h)] * kl_best_multiplier(s.kl_sum.data() + h * kKlGrid);
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
    case QkMethod::Lsq:  // rows are refit (refit_qk); the constants are reported as the inverse RMS
    case QkMethod::Logit:
    case QkMethod::Kl:
      for (int64_t g = 0; g < s.nkv; ++g) c.k[size_t(g)] = inv_rms_k(g);
      for (int64_t h = 0; h < s.nh; ++h) {
        double prod = 0;
        if (m == QkMethod::Lsq) {
          prod = (s.q_sum_s[size_t(h)] / N) * c.k[size_t(h / G)];
        } else if (m == QkMethod::Logit) {
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

void refit_qk(float* qkv, int64_t H, int64_t nh, int64_t nkv, int64_t d, const QkStats& s) {
  const int64_t m = (nh + nkv) * d;
  LING_CHECK(s.xx.size() == size_t(H * H) && s.xy.size() == size_t(H * m),
             "QK method lsq needs the input statistics of a calibration made with --qk-method lsq");
  MatD c(H, H), b(H, m);
  c.v = s.xx;
  b.v = s.xy;
  double tr = 0;
  for (int64_t i = 0; i < H; ++i) tr += c(i, i);
  for (int64_t i = 0; i < H; ++i) c(i, i) += 1e-2 * tr / double(H);
  const SymEig e = sym_eig(c);
  MatD vs = e.vectors;  // V·Λ^−1
  for (int64_t i = 0; i < H; ++i)
    for (int64_t k = 0; k < H; ++k) vs(i, k) /= e.values[size_t(k)];
  const MatD w = matmul(vs, matmul_tn(e.vectors, b));  // (C + λI)^−1 B: [H, m]
  const std::vector<double> temp = lsq_temperatures(s);
  for (int64_t r = 0; r < m; ++r) {
    const double f = r < nh * d ? temp[size_t(r / d)] : 1.0;
    for (int64_t i = 0; i < H; ++i) qkv[r * H + i] = float(w(i, r) * f);
  }
}

std::vector<double> lsq_temperatures(const QkStats& s) {
  std::vector<double> t(size_t(s.nh), 1.0);
  if (s.t_rows > 0 && s.t_kl.size() == size_t(s.nh * kKlGrid))
    for (int64_t h = 0; h < s.nh; ++h) t[size_t(h)] = kl_best_multiplier(s.t_kl.data() + h * kKlGrid);
  return t;
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
