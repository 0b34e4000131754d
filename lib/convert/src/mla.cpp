// GQA → MLA layer conversion: RoRoPE, balanced joint K/V PCA, query folding (see mla.h for the derivation).
#include "ling/convert/mla.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ling/core/error.h"

namespace ling::convert {

int64_t max_kv_lora_rank(int64_t nkv, int64_t d, int64_t rd) { return 2 * nkv * d - rd; }

namespace {

// Σ of the top-r eigenvalues over the rank, as the mean square a latent of that rank has on average (per token).
double latent_ms(const std::vector<double>& values, int64_t r, double tokens) {
  double s = 0;
  for (int64_t j = 0; j < r; ++j) s += std::max(0.0, values[size_t(j)]);
  return s / (double(r) * std::max(tokens, 1.0));
}

// The latent RMSNorm of MlaOptions::linear_latent_norm or of the E[rms] gain: returns the factor s the latent
// rows of the down projection (and their bias) are multiplied by, and sets the norm's weights.
double latent_norm(const std::vector<double>& values, int64_t r, double tokens, bool linear, std::vector<double>& w) {
  const double ms = latent_ms(values, r, tokens);
  if (!linear || ms <= 0) {
    w.assign(size_t(r), std::sqrt(ms + kLatentNormEps));
    return 1.0;
  }
  const double s = std::sqrt(kLinearNormLoad * kLatentNormEps / ms);
  w.assign(size_t(r), std::sqrt(kLatentNormEps) / s);
  return s;
}

void scale_rows(MatD& a, int64_t r, double s, std::vector<double>* bias) {
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < a.cols; ++j) a(i, j) *= s;
  if (bias && !bias->empty())
    for (int64_t i = 0; i < r; ++i) (*bias)[size_t(i)] *= s;
}

std::vector<double> mat_vec(const MatD& a, const std::vector<double>& x) {
  std::vector<double> y(size_t(a.rows), 0.0);
  for (int64_t i = 0; i < a.rows; ++i) {
    double s = 0;
    for (int64_t j = 0; j < a.cols; ++j) s += a(i, j) * x[size_t(j)];
    y[size_t(i)] = s;
  }
  return y;
}

MatD columns(const MatD& a, int64_t c0, int64_t n) {
  MatD out(a.rows, n);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < n; ++j) out(i, j) = a(i, c0 + j);
  return out;
}

MatD rows(const MatD& a, int64_t r0, int64_t n) {
  MatD out(n, a.cols);
  std::memcpy(out.v.data(), a.v.data() + r0 * a.cols, sizeof(double) * size_t(n * a.cols));
  return out;
}

MatD identity(int64_t n) {
  MatD m(n, n);
  for (int64_t i = 0; i < n; ++i) m(i, i) = 1.0;
  return m;
}

double trace(const MatD& a) {
  double t = 0;
  for (int64_t i = 0; i < std::min(a.rows, a.cols); ++i) t += a(i, i);
  return t;
}

// (S + δI)^½ and its inverse for a symmetric PSD S, δ = 1e-4·mean eigenvalue (keeps the inverse bounded).
void sqrt_pair(const MatD& s, MatD& root, MatD& inv_root) {
  const SymEig e = sym_eig(s);
  const int64_t n = s.rows;
  double mean = 0;
  for (double v : e.values) mean += std::max(0.0, v);
  mean = mean > 0 ? mean / double(n) : 1.0;
  MatD a(n, n), b(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k) {
      const double l = std::sqrt(std::max(0.0, e.values[size_t(k)]) + 1e-4 * mean);
      a(i, k) = e.vectors(i, k) * l;
      b(i, k) = e.vectors(i, k) / l;
    }
  root = matmul(a, transpose(e.vectors));
  inv_root = matmul(b, transpose(e.vectors));
}

MatD vstack(const MatD& a, const MatD& b) {
  LING_CHECK(a.cols == b.cols, "vstack: widths ", a.cols, " and ", b.cols, " differ");
  MatD out(a.rows + b.rows, a.cols);
  std::copy(a.v.begin(), a.v.end(), out.v.begin());
  std::copy(b.v.begin(), b.v.end(), out.v.begin() + std::ptrdiff_t(a.v.size()));
  return out;
}

}  // namespace

MlaLayer gqa_to_mla(const GqaLayer& in, const KvCovariance& cov, const MlaOptions& opt) {
  const int64_t H = in.H, nh = in.nh, nkv = in.nkv, d = in.d, rd = in.rd, half = rd / 2;
  const int64_t L = nkv * d, Lk = L - rd, G = nh / nkv, r = opt.kv_lora_rank;
  const bool bias = !in.bk.empty();
  LING_CHECK(rd > 0 && rd % 2 == 0 && rd <= d, "rotary dims ", rd, " must be even and within head_dim ", d);
  LING_CHECK(r >= 1 && r <= max_kv_lora_rank(nkv, d, rd), "--kv-lora-rank ", r, " is outside [1, ",
             max_kv_lora_rank(nkv, d, rd), "]: the latent holds the 2·nkv·d − rope_dim = ",
             max_kv_lora_rank(nkv, d, rd), " values left once the RoPE part takes ", rd);
  LING_CHECK(cov.kv.rows == 2 * L && cov.kv.cols == 2 * L, "calibration K/V covariance is ", cov.kv.rows, "x",
             cov.kv.cols, ", the layer needs ", 2 * L, "x", 2 * L);

  // RoRoPE: per frequency, PCA over the nkv complex coordinates.
  MatD E(rd, L), A(Lk, L);
  MlaLayer out;
  double rope_kept = 0, rope_total = 0;
  int64_t prow = 0;
  for (int64_t i = 0; i < half; ++i) {
    MatD m(nkv, nkv);
    for (int64_t a = 0; a < nkv; ++a)
      for (int64_t b = 0; b < nkv; ++b)
        m(a, b) = cov.kv(a * d + i, b * d + i) + cov.kv(a * d + i + half, b * d + i + half);
    SymEig e = sym_eig(m);
    for (int64_t j = 0; j < nkv; ++j) {
      rope_total += std::max(0.0, e.values[size_t(j)]);
      if (j == 0) rope_kept += std::max(0.0, e.values[0]);
    }
    for (int64_t g = 0; g < nkv; ++g) {
      E(2 * i, g * d + i) = e.vectors(g, 0);
      E(2 * i + 1, g * d + i + half) = e.vectors(g, 0);
    }
    for (int64_t j = 1; j < nkv; ++j, prow += 2)
      for (int64_t g = 0; g < nkv; ++g) {
        A(prow, g * d + i) = e.vectors(g, j);
        A(prow + 1, g * d + i + half) = e.vectors(g, j);
      }
  }
  for (int64_t g = 0; g < nkv; ++g)
    for (int64_t t = rd; t < d; ++t, ++prow) A(prow, g * d + t) = 1.0;
  LING_CHECK(prow == Lk, "internal error: NoPE pool has ", prow, " rows, expected ", Lk);
  out.rope_energy = rope_total > 0 ? rope_kept / rope_total : 1.0;

  // Query side of the pool per head: Ã_h = A_g with the expected rotation folded into the residual pairs.
  auto pool_query = [&](int64_t h) {
    const int64_t g = h / G;
    MatD Ag = columns(A, g * d, d);  // [Lk, d]
    if (!in.rot_cos.empty())  // residual pairs (i, j ≥ 1) come first in the pool, nkv − 1 per frequency
      for (int64_t k = 0; k < half * (nkv - 1); ++k) {
        const int64_t i = k / (nkv - 1), pr = 2 * k;
        const double c = in.rot_cos[size_t(h * half + i)], sn = in.rot_sin[size_t(h * half + i)];
        for (int64_t t = 0; t < d; ++t) {
          const double re = Ag(pr, t), im = Ag(pr + 1, t);
          Ag(pr, t) = c * re - sn * im;
          Ag(pr + 1, t) = sn * re + c * im;
        }
      }
    return Ag;
  };

  // Weights of the joint PCA: z' = [α·M_K·pool ; M_V·v]. Plain (TransMLA): M = I and α = 1/ratio with ratio the
  // quotient of mean column norms. Weighted: M_K = (Σ_h Ã_h Σ_q,h Ã_hᵀ)^½ so that the PCA error is the expected
  // squared logit error Σ_h E[(q_h·Δk)²]; M_V = blockdiag_g (Σ_{h∈g} W_O,hᵀ W_O,h)^½ so that it is the squared
  // error after the output projection; α equalises the two weighted energies.
  const MatD ckk = columns(rows(cov.kv, 0, L), 0, L);
  const MatD cpool = congruence(A, ckk);
  const MatD cvv = columns(rows(cov.kv, L, L), L, L);
  MatD Mk = identity(Lk), Mki = identity(Lk), Mv = identity(L), Mvi = identity(L);
  double alpha = 1.0;
  out.weighted_pca = opt.weighted_pca && cov.q.rows == nh * d && in.wo.rows == in.H && in.wo.cols == nh * d;
  if (out.weighted_pca) {
    MatD sq(Lk, Lk);
    for (int64_t h = 0; h < nh; ++h) {
      const MatD qh = columns(rows(cov.q, h * d, d), h * d, d);
      const MatD Ah = pool_query(h);
      const MatD c = congruence(Ah, qh);
      for (size_t i = 0; i < sq.v.size(); ++i) sq.v[i] += c.v[i];
    }
    sqrt_pair(sq, Mk, Mki);
    MatD sv(L, L);
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / G;
      const MatD woh = columns(in.wo, h * d, d);  // [H, d]
      const MatD c = matmul_tn(woh, woh);
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) sv(g * d + a, g * d + b) += c(a, b);
    }
    sqrt_pair(sv, Mv, Mvi);
    const double ek = trace(congruence(Mk, cpool)), ev = trace(congruence(Mv, cvv));
    alpha = (ek > 0 && ev > 0) ? std::sqrt(ev / ek) / opt.balance_kv_ratio : 1.0;
    out.balance_ratio = 1.0 / alpha;
  } else {
    double kn = 0, vn = 0;
    for (int64_t j = 0; j < Lk; ++j) kn += std::sqrt(std::max(0.0, cpool(j, j)));
    for (int64_t j = 0; j < L; ++j) vn += std::sqrt(std::max(0.0, cov.kv(L + j, L + j)));
    kn /= double(Lk);
    vn /= double(L);
    const double ratio = (kn > 0 && vn > 0) ? kn / (vn * opt.balance_kv_ratio) : 1.0;
    alpha = 1.0 / ratio;
    out.balance_ratio = ratio;
  }

  // Joint PCA of z' = T·[k; v], T = blockdiag(α·M_K·A, M_V).
  MatD T(Lk + L, 2 * L);
  {
    const MatD mka = matmul(Mk, A);
    for (int64_t a = 0; a < Lk; ++a)
      for (int64_t b = 0; b < L; ++b) T(a, b) = alpha * mka(a, b);
    for (int64_t a = 0; a < L; ++a)
      for (int64_t b = 0; b < L; ++b) T(Lk + a, L + b) = Mv(a, b);
  }
  MatD cb = congruence(T, cov.kv);
  SymEig eb = sym_eig(cb);
  double total = 0, kept = 0;
  for (size_t j = 0; j < eb.values.size(); ++j) {
    total += std::max(0.0, eb.values[j]);
    if (int64_t(j) < r) kept += std::max(0.0, eb.values[j]);
  }
  out.latent_energy = total > 0 ? kept / total : 1.0;
  MatD R = columns(eb.vectors, 0, r);  // [Lk + L, r]
  MatD RK = matmul(Mki, rows(R, 0, Lk)), RV = matmul(Mvi, rows(R, Lk, L));  // back to pool and V coordinates
  for (double& x : RK.v) x /= alpha;

  // kv_a_proj_with_mqa = [Rᵀ·T·[W_K; W_V] ; E·W_K].
  MatD wkv = vstack(in.wk, in.wv);
  MatD RtT = matmul_tn(R, T);  // [r, 2L]
  MatD lat = matmul(RtT, wkv);
  MatD pe = matmul(E, in.wk);
  out.kv_a = vstack(lat, pe);
  if (bias) {
    std::vector<double> bkv(in.bk);
    bkv.insert(bkv.end(), in.bv.begin(), in.bv.end());
    out.kv_a_bias = mat_vec(RtT, bkv);
    std::vector<double> bpe = mat_vec(E, in.bk);
    out.kv_a_bias.insert(out.kv_a_bias.end(), bpe.begin(), bpe.end());
  }
  scale_rows(out.kv_a, r, latent_norm(eb.values, r, cov.tokens, opt.linear_latent_norm, out.kv_a_norm),
             &out.kv_a_bias);

  // Reconstruction errors on the calibration statistics: [p̂; v̂] = [RK; RV]·Rᵀ·T·[k; v].
  {
    MatD Ebig = matmul(vstack(RK, RV), RtT);  // [Lk + L, 2L]
    for (int64_t a = 0; a < Lk; ++a)
      for (int64_t b = 0; b < L; ++b) Ebig(a, b) -= A(a, b);
    for (int64_t a = 0; a < L; ++a) Ebig(Lk + a, L + a) -= 1.0;
    const MatD err = congruence(Ebig, cov.kv);
    double ek = 0, evv = 0;
    for (int64_t j = 0; j < Lk; ++j) ek += err(j, j);
    for (int64_t j = 0; j < L; ++j) evv += err(Lk + j, Lk + j);
    const double tk = trace(cpool), tv = trace(cvv);
    out.k_rel_err = tk > 0 ? std::max(0.0, ek) / tk : 0.0;
    out.v_rel_err = tv > 0 ? std::max(0.0, evv) / tv : 0.0;
  }

  // kv_b: per head [Ã_hᵀ·RK ; RV[g]].
  out.kv_b = MatD(nh * 2 * d, r);
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t g = h / G;
    const MatD uk = matmul_tn(pool_query(h), RK);  // [d, r]
    for (int64_t t = 0; t < d; ++t)
      for (int64_t c = 0; c < r; ++c) {
        out.kv_b(h * 2 * d + t, c) = uk(t, c);
        out.kv_b(h * 2 * d + d + t, c) = RV(g * d + t, c);
      }
  }

  // Query: per head [q_h ; E_g·q_h] × query_scale, directly or through the q LoRA.
  const int64_t dq = d + rd;
  auto head_map = [&](int64_t h) {  // [d + rd, d]
    const int64_t g = h / G;
    MatD m(dq, d);
    for (int64_t t = 0; t < d; ++t) m(t, t) = opt.query_scale;
    for (int64_t p = 0; p < rd; ++p)
      for (int64_t t = 0; t < d; ++t) m(d + p, t) = opt.query_scale * E(p, g * d + t);
    return m;
  };
  if (opt.q_lora_rank == 0) {
    out.q_proj = MatD(nh * dq, H);
    for (int64_t h = 0; h < nh; ++h) {
      MatD qh = matmul(head_map(h), rows(in.wq, h * d, d));
      std::copy(qh.v.begin(), qh.v.end(), out.q_proj.v.begin() + std::ptrdiff_t(h * dq * H));
      if (!in.bq.empty()) {
        std::vector<double> bh(in.bq.begin() + h * d, in.bq.begin() + (h + 1) * d);
        std::vector<double> b = mat_vec(head_map(h), bh);
        out.q_proj_bias.insert(out.q_proj_bias.end(), b.begin(), b.end());
      }
    }
  } else {
    const int64_t rq = opt.q_lora_rank;
    LING_CHECK(cov.q.rows == nh * d, "--q-lora-rank needs the query covariance of the calibration file ",
               "(made without --no-q-cov)");
    LING_CHECK(rq >= 1 && rq <= nh * d, "--q-lora-rank ", rq, " is outside [1, ", nh * d, "]");
    SymEig eq = sym_eig(cov.q);
    MatD Rq = columns(eq.vectors, 0, rq);  // [nh·d, rq]
    double qt = 0, qk = 0;
    for (size_t j = 0; j < eq.values.size(); ++j) {
      qt += std::max(0.0, eq.values[j]);
      if (int64_t(j) < rq) qk += std::max(0.0, eq.values[j]);
    }
    out.q_energy = qt > 0 ? qk / qt : 1.0;
    out.q_a = matmul_tn(Rq, in.wq);
    if (!in.bq.empty()) out.q_a_bias = mat_vec(transpose(Rq), in.bq);
    scale_rows(out.q_a, rq, latent_norm(eq.values, rq, cov.tokens, opt.linear_latent_norm, out.q_a_norm),
               &out.q_a_bias);
    out.q_b = MatD(nh * dq, rq);
    for (int64_t h = 0; h < nh; ++h) {
      MatD qb = matmul(head_map(h), rows(Rq, h * d, d));
      std::copy(qb.v.begin(), qb.v.end(), out.q_b.v.begin() + std::ptrdiff_t(h * dq * rq));
    }
  }
  return out;
}

void expand_qkv_to_mha(const float* qkv, int64_t H, int64_t nh, int64_t nkv, int64_t d, float* out) {
  const int64_t G = nh / nkv;
  const size_t row = sizeof(float) * size_t(H);
  std::memcpy(out, qkv, row * size_t(nh * d));
  for (int part = 0; part < 2; ++part) {  // K then V
    const float* src = qkv + (nh + part * nkv) * d * H;
    float* dst = out + (nh + part * nh) * d * H;
    for (int64_t h = 0; h < nh; ++h) std::memcpy(dst + h * d * H, src + (h / G) * d * H, row * size_t(d));
  }
}

}  // namespace ling::convert
