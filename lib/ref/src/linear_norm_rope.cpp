// Reference linear (OpenBLAS sgemm), RMSNorm / GroupRMSNorm, RoPE frequencies (default and YaRN) and RoPE
// application (architecture.md §2.2, §2.5 step 3, §2.7 step 4, §2.8). fp32 values, fp64 sums.
#include <cblas.h>

#include <cmath>
#include <cstring>

#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::ref {

void linear(const LinearParams& p) {
  if (p.M <= 0 || p.N <= 0) return;
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldy = p.ldy ? p.ldy : p.N;
  if (p.K == 0) {
    for (int64_t m = 0; m < p.M && !p.accumulate; ++m)
      for (int64_t n = 0; n < p.N; ++n) p.y[m * ldy + n] = 0.0f;
  } else {
    // sgemm for every M (no sgemv for M = 1): single-row decode steps use the same kernel as batched rows.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p.M, (int)p.N, (int)p.K, 1.0f, p.x, (int)ldx, p.w,
                (int)p.K, p.accumulate ? 1.0f : 0.0f, p.y, (int)ldy);
  }
  if (p.bias)
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n) p.y[m * ldy + n] += p.bias[n];
}

void rms_norm(const RmsNormParams& p) {
  LING_CHECK(p.groups > 0 && p.dim % p.groups == 0, "rms_norm: dim ", p.dim, " not divisible by groups ", p.groups);
  const int64_t ldx = p.ldx ? p.ldx : p.dim, ldy = p.ldy ? p.ldy : p.dim, gs = p.dim / p.groups;
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * ldx;
    float* y = p.y + r * ldy;
    for (int64_t g = 0; g < p.groups; ++g) {
      double ss = 0.0;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) ss += double(x[i]) * double(x[i]);
      const float inv = float(1.0 / std::sqrt(ss / double(gs) + p.eps));
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) y[i] = (x[i] * inv) * p.w[i];
    }
  }
}

void add_rms_norm(const AddRmsNormParams& p) {
  if (p.d)
    for (int64_t i = 0; i < p.rows * p.dim; ++i) p.h[i] += p.d[i];
  RmsNormParams n;
  n.x = p.h, n.w = p.w, n.y = p.y, n.rows = p.rows, n.dim = p.dim, n.eps = p.eps;
  rms_norm(n);
}

void group_norm_gate(const GroupNormGateParams& p) {
  RmsNormParams n;
  n.x = n.y = p.o, n.w = p.w, n.rows = p.rows, n.dim = p.width, n.groups = p.groups, n.eps = p.eps;
  rms_norm(n);
  const int64_t ldg = p.ld_gate ? p.ld_gate : p.width;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t i = 0; i < p.width; ++i) p.o[r * p.width + i] *= 1.0f / (1.0f + std::exp(-p.gate[r * ldg + i]));
}

void embed(const EmbedParams& p) {
  for (int64_t i = 0; i < p.n; ++i)
    std::memcpy(p.out + i * p.H, p.table + int64_t(p.ids[i]) * p.H, sizeof(float) * size_t(p.H));
}

namespace {
double yarn_get_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }
double yarn_correction_dim(double rot, double dim, double base, double maxpos) {
  return dim * std::log(maxpos / (rot * 2.0 * M_PI)) / (2.0 * std::log(base));
}
}  // namespace

RopeFreqs rope_freqs(const RopeFreqParams& p) {
  LING_CHECK(p.rope_dim > 0 && p.rope_dim % 2 == 0, "rope: rotary dims ", p.rope_dim, " must be positive and even");
  const int64_t half = p.rope_dim / 2;
  RopeFreqs f;
  f.inv_freq.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1 / base ** (arange(0, dim, 2).float() / dim), exponent in f32.
    const float e = float(2 * i) / float(p.rope_dim);
    f.inv_freq[i] = float(1.0 / std::pow(p.theta, double(e)));
  }
  if (!p.yarn) return f;
  const double factor = p.factor;
  double af = p.attention_factor;
  if (af == 0.0) {
    if (p.mscale != 0.0 && p.mscale_all_dim != 0.0)
      af = yarn_get_mscale(factor, p.mscale) / yarn_get_mscale(factor, p.mscale_all_dim);
    else
      af = yarn_get_mscale(factor, 1.0);
  }
  f.attention_factor = float(af);
  const double dim = double(p.rope_dim), maxpos = double(p.original_max_position_embeddings);
  double low = std::floor(yarn_correction_dim(p.beta_fast, dim, p.theta, maxpos));
  double high = std::ceil(yarn_correction_dim(p.beta_slow, dim, p.theta, maxpos));
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1.0);
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const float pos_freq = float(std::pow(p.theta, double(float(2 * i) / float(p.rope_dim))));
    const float extra = 1.0f / pos_freq, inter = 1.0f / (float(factor) * pos_freq);
    float ramp = float((double(i) - low) / (high - low));
    ramp = std::min(1.0f, std::max(0.0f, ramp));
    const float extra_factor = 1.0f - ramp;
    f.inv_freq[i] = inter * (1.0f - extra_factor) + extra * extra_factor;
  }
  if (p.mscale_all_dim != 0.0) {
    const double m = yarn_get_mscale(factor, p.mscale_all_dim);
    f.mla_mscale2 = m * m;
  }
  return f;
}

void rope(const RopeParams& p) {
  const int64_t half = p.rope_dim / 2;
  for (int64_t t = 0; t < p.rows; ++t) {
    std::vector<float> c(half), s(half), tmp(p.rope_dim);
    const float pos = float(p.pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float ang = pos * p.inv_freq[i];
      c[i] = float(std::cos(double(ang))) * p.attention_factor;
      s[i] = float(std::sin(double(ang))) * p.attention_factor;
    }
    for (int64_t h = 0; h < p.heads; ++h) {
      float* x = p.x + t * p.row_stride + h * p.head_stride;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = p.interleaved ? x[2 * i] : x[i];
        const float x2 = p.interleaved ? x[2 * i + 1] : x[i + half];
        tmp[i] = x1 * c[i] - x2 * s[i];
        tmp[i + half] = x2 * c[i] + x1 * s[i];
      }
      for (int64_t i = 0; i < p.rope_dim; ++i) x[i] = tmp[i];
    }
  }
}

void qk_norm_rope(const QkNormRopeParams& p) {
  const int64_t ld = p.ld ? p.ld : (p.nq + p.nk) * p.hd;
  if (p.wq || p.wk) {
    RmsNormParams n;
    n.dim = p.hd, n.eps = p.eps;
    for (int64_t t = 0; t < p.rows; ++t) {
      if (p.wq) n.x = n.y = p.x + t * ld, n.w = p.wq, n.rows = p.nq, rms_norm(n);
      if (p.wk) n.x = n.y = p.x + t * ld + p.nq * p.hd, n.w = p.wk, n.rows = p.nk, rms_norm(n);
    }
  }
  RopeParams r;
  r.x = p.x, r.pos = p.pos, r.inv_freq = p.inv_freq, r.rows = p.rows, r.heads = p.nq + p.nk, r.row_stride = ld;
  r.head_stride = p.hd, r.rope_dim = p.rope_dim, r.attention_factor = p.attention_factor;
  r.interleaved = p.interleaved;
  rope(r);
}

void swiglu(const SwigluParams& p) {
  const int64_t ldo = p.ldo ? p.ldo : p.I;
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* g = p.gu + r * 2 * p.I;
    const float* u = g + p.I;
    float* o = p.out + r * ldo;
    for (int64_t i = 0; i < p.I; ++i) {
      const float a = g[i], b = u[i];
      o[i] = (a / (1.0f + std::exp(-a))) * b;
    }
  }
}

}  // namespace ling::ref
