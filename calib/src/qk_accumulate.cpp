// QK-norm statistics of one window: RMS sums per head, and on sampled query rows the normed and fused
// attention logits (least-squares sums) and the KL divergence of the fused rows over the product grid.
#include "qk_accumulate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <cblas.h>

namespace ling::calib {

namespace {

// out[i] += KL(p ‖ softmax(base·m_i·b)) for the grid multipliers m_i, p = softmax(a_scale·a) over m keys
// (left in `p` for the caller).
void add_kl_grid(const double* a, double a_scale, const double* b, double base, size_t m, double* out,
                 std::vector<double>& p) {
  p.resize(m);
  double mx = -1e300;
  for (size_t u = 0; u < m; ++u) mx = std::max(mx, a_scale * a[u]);
  double z = 0;
  for (size_t u = 0; u < m; ++u) z += (p[u] = std::exp(a_scale * a[u] - mx));
  const double logz = std::log(z) + mx;
  for (size_t u = 0; u < m; ++u) p[u] /= z;
  for (int gi = 0; gi < convert::kKlGrid; ++gi) {
    const double c = base * convert::kl_grid_multiplier(gi);
    double mc = -1e300;
    for (size_t u = 0; u < m; ++u) mc = std::max(mc, c * b[u]);
    double zc = 0;
    for (size_t u = 0; u < m; ++u) zc += std::exp(c * b[u] - mc);
    const double logzc = std::log(zc) + mc;
    double kl = 0;
    for (size_t u = 0; u < m; ++u)
      if (p[u] > 0) kl += p[u] * ((a_scale * a[u] - logz) - (c * b[u] - logzc));
    out[gi] += kl;
  }
}

}  // namespace

QkAccumulator::QkAccumulator(const ModelConfig& c, const ref::RopeFreqs& rf, int64_t logit_rows)
    : nh_(c.num_attention_heads), nkv_(c.num_key_value_heads), d_(c.head_dim), rd_(c.rope_dim()),
      rows_(logit_rows), H_(c.hidden_size), eps_(c.rms_norm_eps), scale_(float(1.0 / std::sqrt(double(c.head_dim)))), rf_(rf) {}

void QkAccumulator::add(convert::QkStats& s, const float* qkv, int64_t n, const float* gq, const float* gk) const {
  const int64_t nh = nh_, nkv = nkv_, d = d_, W = (nh + 2 * nkv) * d, G = nh / nkv;
  // γ-scaled copies (for the logits) and per-token inverse RMS of the un-γ'd vectors.
  std::vector<float> a(static_cast<size_t>(n * nh * d)), b(size_t(n * nkv * d));
  std::vector<double> sq(static_cast<size_t>(n * nh)), sk(size_t(n * nkv));
  auto one = [&](const float* v, const float* g, float* out, double& sumsq, double& sum_s, double& sum_g2s,
                 double& sum_g2) {
    double ss = 0, g2 = 0;
    for (int64_t j = 0; j < d; ++j) {
      ss += double(v[j]) * v[j];
      const float x = v[j] * (g ? g[j] : 1.0f);
      out[j] = x;
      g2 += double(x) * x;
    }
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps_);
    sumsq += ss; sum_s += inv; sum_g2s += g2 * inv; sum_g2 += g2;
    return inv;
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < nh; ++h)
      sq[size_t(t * nh + h)] = one(qkv + t * W + h * d, gq, a.data() + (t * nh + h) * d, s.q_sumsq[size_t(h)],
                                   s.q_sum_s[size_t(h)], s.q_sum_g2s[size_t(h)], s.q_sum_g2[size_t(h)]);
    for (int64_t g = 0; g < nkv; ++g)
      sk[size_t(t * nkv + g)] = one(qkv + t * W + (nh + g) * d, gk, b.data() + (t * nkv + g) * d,
                                    s.k_sumsq[size_t(g)], s.k_sum_s[size_t(g)], s.k_sum_g2s[size_t(g)],
                                    s.k_sum_g2[size_t(g)]);
  }
  s.tokens += double(n);
  if (!gq || rows_ <= 0) return;

  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = t;
  ref::RopeParams rp;
  rp.pos = pos.data(); rp.inv_freq = rf_.inv_freq.data(); rp.rows = n; rp.rope_dim = rd_;
  rp.attention_factor = rf_.attention_factor;
  rp.x = a.data(); rp.heads = nh; rp.row_stride = nh * d; rp.head_stride = d; ref::rope(rp);
  rp.x = b.data(); rp.heads = nkv; rp.row_stride = nkv * d; rp.head_stride = d; ref::rope(rp);

  const int64_t stride = std::max<int64_t>(1, n / rows_);
  std::vector<int64_t> rows;
  for (int64_t t = n - 1; t >= 0 && int64_t(rows.size()) < rows_; t -= stride) rows.push_back(t);
  std::vector<double> p;
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t g = h / G;
    // Logits of the sampled rows: ℓ (fused, γ folded, no RMS) and ℓ̂ = s_q·s_k·ℓ (the normed model's).
    std::vector<std::vector<double>> L(rows.size()), Lh(rows.size());
    double xy = 0, yy = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t t = rows[i];
      const float* qa = a.data() + (t * nh + h) * d;
      L[i].resize(size_t(t + 1));
      Lh[i].resize(size_t(t + 1));
      for (int64_t u = 0; u <= t; ++u) {
        const float* kb = b.data() + (u * nkv + g) * d;
        double dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += double(qa[j]) * kb[j];
        L[i][size_t(u)] = dot;
        Lh[i][size_t(u)] = dot * sq[size_t(t * nh + h)] * sk[size_t(u * nkv + g)];
        xy += Lh[i][size_t(u)] * dot;
        yy += dot * dot;
      }
      s.pairs += double(t + 1);
    }
    s.logit_xy[size_t(h)] += xy;
    s.logit_yy[size_t(h)] += yy;
    if (s.kl_ref[size_t(h)] == 0.0 && yy > 0) s.kl_ref[size_t(h)] = xy / yy;
    const double ref_prod = s.kl_ref[size_t(h)];
    if (ref_prod <= 0) continue;
    // KL(p_normed ‖ p_c) for every grid product c.
    for (size_t i = 0; i < rows.size(); ++i) {
      const size_t m = L[i].size();
      add_kl_grid(Lh[i].data(), scale_, L[i].data(), ref_prod * scale_, m, s.kl_sum.data() + h * convert::kKlGrid, p);
      // Expected rotation of each frequency under this attention row.
      const int64_t t = rows[i], half = rd_ / 2;
      const double af2 = double(rf_.attention_factor) * rf_.attention_factor;
      for (int64_t f = 0; f < half; ++f) {
        double c = 0, sn = 0;
        const double th = rf_.inv_freq[size_t(f)];
        for (size_t u = 0; u < m; ++u) {
          const double ang = th * double(t - int64_t(u));
          c += p[u] * std::cos(ang);
          sn += p[u] * std::sin(ang);
        }
        s.rot_cos[size_t(h * half + f)] += af2 * c;
        s.rot_sin[size_t(h * half + f)] += af2 * sn;
      }
    }
    if (h == 0) s.kl_rows += double(rows.size());
  }
}

void QkAccumulator::add_temperature(convert::QkStats& s, const float* qkv_orig, const float* qkv_fused, int64_t n,
                                    const float* gq, const float* gk) const {
  const int64_t nh = nh_, nkv = nkv_, d = d_, W = (nh + 2 * nkv) * d, G = nh / nkv;
  if (s.t_kl.empty()) s.t_kl.assign(size_t(nh * convert::kKlGrid), 0.0);
  // Normed (q̂, k̂) and fused (q', k') heads, then RoPE on all four.
  std::vector<float> qn(size_t(n * nh * d)), kn(size_t(n * nkv * d)), qf(size_t(n * nh * d)), kf(size_t(n * nkv * d));
  auto norm = [&](const float* v, const float* g, float* out) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(v[j]) * v[j];
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps_);
    for (int64_t j = 0; j < d; ++j) out[j] = float(v[j] * inv) * (g ? g[j] : 1.0f);
  };
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < nh; ++h) {
      norm(qkv_orig + t * W + h * d, gq, qn.data() + (t * nh + h) * d);
      std::copy(qkv_fused + t * W + h * d, qkv_fused + t * W + (h + 1) * d, qf.data() + (t * nh + h) * d);
    }
    for (int64_t g = 0; g < nkv; ++g) {
      norm(qkv_orig + t * W + (nh + g) * d, gk, kn.data() + (t * nkv + g) * d);
      std::copy(qkv_fused + t * W + (nh + g) * d, qkv_fused + t * W + (nh + g + 1) * d, kf.data() + (t * nkv + g) * d);
    }
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = t;
  ref::RopeParams rp;
  rp.pos = pos.data(); rp.inv_freq = rf_.inv_freq.data(); rp.rows = n; rp.rope_dim = rd_;
  rp.attention_factor = rf_.attention_factor; rp.head_stride = d;
  for (float* x : {qn.data(), qf.data()}) { rp.x = x; rp.heads = nh; rp.row_stride = nh * d; ref::rope(rp); }
  for (float* x : {kn.data(), kf.data()}) { rp.x = x; rp.heads = nkv; rp.row_stride = nkv * d; ref::rope(rp); }
  const int64_t stride = std::max<int64_t>(1, n / rows_);
  std::vector<double> lh, lf, p;
  for (int64_t t = n - 1, taken = 0; t >= 0 && taken < rows_; t -= stride, ++taken) {
    const size_t m = size_t(t + 1);
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / G;
      lh.assign(m, 0.0);
      lf.assign(m, 0.0);
      for (size_t u = 0; u < m; ++u) {
        double a = 0, b = 0;
        for (int64_t j = 0; j < d; ++j) {
          a += double(qn[size_t((t * nh + h) * d + j)]) * kn[size_t((int64_t(u) * nkv + g) * d + j)];
          b += double(qf[size_t((t * nh + h) * d + j)]) * kf[size_t((int64_t(u) * nkv + g) * d + j)];
        }
        lh[u] = scale_ * a;
        lf[u] = scale_ * b;
      }
      add_kl_grid(lh.data(), 1.0, lf.data(), 1.0, m, s.t_kl.data() + h * convert::kKlGrid, p);
    }
    s.t_rows += 1;
  }
}

void QkAccumulator::add_refit(convert::QkStats& s, const float* x, const float* qkv, int64_t n, const float* gq,
                              const float* gk) const {
  const int64_t H = H_, d = d_, W = (nh_ + 2 * nkv_) * d, m = (nh_ + nkv_) * d;
  if (s.xx.empty()) {
    s.xx.assign(size_t(H * H), 0.0);
    s.xy.assign(size_t(H * m), 0.0);
  }
  std::vector<double> xd(size_t(n * H)), y(size_t(n * m));
  for (int64_t i = 0; i < n * H; ++i) xd[size_t(i)] = x[i];
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < nh_ + nkv_; ++h) {
      const float* v = qkv + t * W + h * d;
      const float* g = h < nh_ ? gq : gk;
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += double(v[j]) * v[j];
      const double inv = 1.0 / std::sqrt(ss / double(d) + eps_);
      for (int64_t j = 0; j < d; ++j) y[size_t(t * m + h * d + j)] = double(v[j]) * inv * (g ? g[j] : 1.0f);
    }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(H), int(H), int(n), 1.0, xd.data(), int(H), xd.data(),
              int(H), 1.0, s.xx.data(), int(H));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(H), int(m), int(n), 1.0, xd.data(), int(H), y.data(),
              int(m), 1.0, s.xy.data(), int(m));
}

}  // namespace ling::calib
