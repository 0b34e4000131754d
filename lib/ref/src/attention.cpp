// Reference causal softmax attention (GQA §2.5, MLA prefill §2.7 step 6) and absorbed MLA decode over the
// latent cache (§2.7 step 7). Scores and softmax in fp32 with fp64 sums; O(T·S) per head, no tiling.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::ref {

void attention(const AttentionParams& p) {
  LING_CHECK(p.nkv > 0 && p.nh % p.nkv == 0, "attention: ", p.nh, " heads not divisible by ", p.nkv, " kv heads");
  const int64_t ldq = p.ldq ? p.ldq : p.nh * p.dk, ldk = p.ldk ? p.ldk : p.nkv * p.dk;
  const int64_t ldv = p.ldv ? p.ldv : p.nkv * p.dv, ldo = p.ldo ? p.ldo : p.nh * p.dv;
  const int64_t G = p.nh / p.nkv;
#pragma omp parallel for collapse(2) schedule(dynamic, 4) if (p.T * p.S * p.nh * (p.dk + p.dv) > (1 << 23))
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t h = 0; h < p.nh; ++h) {
      const int64_t g = h / G;
      const float* q = p.q + t * ldq + h * p.dk;
      float* o = p.o + t * ldo + h * p.dv;
      const int64_t n = std::min<int64_t>(p.qpos[t] + 1, p.S);
      std::vector<float> sc(std::max<int64_t>(n, 1));
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        const float* k = p.k + j * ldk + g * p.dk;
        double d = 0.0;
#pragma omp simd reduction(+ : d)
        for (int64_t i = 0; i < p.dk; ++i) d += double(q[i]) * double(k[i]);
        sc[j] = float(d) * p.scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        sum += sc[j];
      }
      std::vector<double> acc(p.dv, 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const float* v = p.v + j * ldv + g * p.dv;
        const double w = double(sc[j]) / sum;
#pragma omp simd
        for (int64_t i = 0; i < p.dv; ++i) acc[i] += w * double(v[i]);
      }
      for (int64_t i = 0; i < p.dv; ++i) o[i] = n > 0 ? float(acc[i]) : 0.0f;
    }
  }
}

void attention_gemm(const AttentionParams& p) {
  LING_CHECK(p.nkv > 0 && p.nh % p.nkv == 0, "attention: ", p.nh, " heads not divisible by ", p.nkv, " kv heads");
  const int64_t ldq = p.ldq ? p.ldq : p.nh * p.dk, ldk = p.ldk ? p.ldk : p.nkv * p.dk;
  const int64_t ldv = p.ldv ? p.ldv : p.nkv * p.dv, ldo = p.ldo ? p.ldo : p.nh * p.dv;
  const int64_t G = p.nh / p.nkv, tile = 256;
  if (p.T <= 0) return;
  if (p.S <= 0) {
    for (int64_t t = 0; t < p.T; ++t) std::fill(p.o + t * ldo, p.o + t * ldo + p.nh * p.dv, 0.0f);
    return;
  }
  std::vector<float> sc(size_t(std::min(tile, p.T) * p.S));
  for (int64_t h = 0; h < p.nh; ++h) {
    const int64_t g = h / G;
    for (int64_t t0 = 0; t0 < p.T; t0 += tile) {
      const int64_t m = std::min(tile, p.T - t0);
      // Keys beyond the last query's position are masked for every row of the tile: skip them.
      const int64_t S = std::min<int64_t>(p.S, p.qpos[t0 + m - 1] + 1);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(S), int(p.dk), p.scale,
                  p.q + t0 * ldq + h * p.dk, int(ldq), p.k + g * p.dk, int(ldk), 0.0f, sc.data(), int(S));
      for (int64_t i = 0; i < m; ++i) {
        float* row = sc.data() + i * S;
        const int64_t n = std::min<int64_t>(p.qpos[t0 + i] + 1, S);
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
        double sum = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = n > 0 ? float(1.0 / sum) : 0.0f;
        for (int64_t j = 0; j < n; ++j) row[j] *= inv;
        for (int64_t j = n; j < S; ++j) row[j] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(p.dv), int(S), 1.0f, sc.data(), int(S),
                  p.v + g * p.dv, int(ldv), 0.0f, p.o + t0 * ldo + h * p.dv, int(ldo));
    }
  }
}

void mla_decode_absorbed(const MlaDecodeParams& p) {
  const int64_t dqk = p.dn + p.dr, ldq = p.ldq ? p.ldq : p.nh * dqk, lc = p.r + p.dr, stride = p.dn + p.dv;
#pragma omp parallel for collapse(2) if (p.T * p.nh * (p.S + p.dn) * (p.r + p.dr) > (1 << 23))
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t h = 0; h < p.nh; ++h) {
      const float* qn = p.q + t * ldq + h * dqk;
      const float* qp = qn + p.dn;
      const float* wuk = p.kv_b + h * stride * p.r;        // [dn, r]
      const float* wuv = p.kv_b + (h * stride + p.dn) * p.r;  // [dv, r]
      std::vector<double> qt(p.r, 0.0);  // q̃ = W_UKᵀ q_nope
      for (int64_t n = 0; n < p.dn; ++n)
        for (int64_t c = 0; c < p.r; ++c) qt[c] += double(wuk[n * p.r + c]) * double(qn[n]);
      const int64_t S = std::min<int64_t>(p.qpos[t] + 1, p.S);
      std::vector<float> sc(std::max<int64_t>(S, 1));
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < S; ++j) {
        const float* row = p.cache + j * lc;
        double d = 0.0;
#pragma omp simd reduction(+ : d)
        for (int64_t c = 0; c < p.r; ++c) d += qt[c] * double(row[c]);
        for (int64_t c = 0; c < p.dr; ++c) d += double(qp[c]) * double(row[p.r + c]);
        sc[j] = float(d) * p.scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < S; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        sum += sc[j];
      }
      std::vector<double> u(p.r, 0.0);
      for (int64_t j = 0; j < S; ++j) {
        const double w = double(sc[j]) / sum;
        const float* row = p.cache + j * lc;
        for (int64_t c = 0; c < p.r; ++c) u[c] += w * double(row[c]);
      }
      float* o = p.o + (t * p.nh + h) * p.dv;
      for (int64_t i = 0; i < p.dv; ++i) {
        double a = 0.0;
        for (int64_t c = 0; c < p.r; ++c) a += double(wuv[i * p.r + c]) * u[c];
        o[i] = S > 0 ? float(a) : 0.0f;
      }
    }
  }
}

}  // namespace ling::ref
