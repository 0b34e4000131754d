// Reference Lightning attention (architecture.md §2.6 steps 5–8): the token loop and the chunked form over a
// fp32 state [nh, d, d]. Inner products accumulate in fp64; the chunked form equals the loop up to rounding
// (bf16_operands: it rounds the operands of a bf16 tensor-core kernel, see ops.h).
#include <cmath>
#include <vector>

#include "ling/core/dtype.h"
#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::ref {

std::vector<float> lightning_log_decay(const std::vector<double>& slopes, double decay_factor) {
  std::vector<float> g(slopes.size());
  for (size_t h = 0; h < slopes.size(); ++h) g[h] = float(-slopes[h] * decay_factor);
  return g;
}

namespace {
struct Strides { int64_t q, k, v, o; };
Strides strides_of(const LightningParams& p) {
  const int64_t w = p.nh * p.d;
  return {p.ldq ? p.ldq : w, p.ldk ? p.ldk : w, p.ldv ? p.ldv : w, p.ldo ? p.ldo : w};
}
}  // namespace

void lightning_recurrent(const LightningParams& p) {
  const Strides s = strides_of(p);
  const int64_t d = p.d;
#pragma omp parallel for if (p.nh > 1 && p.T * d * d * p.nh > (1 << 22))
  for (int64_t h = 0; h < p.nh; ++h) {
    float* S = p.state + h * d * d;  // [dk, dv]
    const float decay = std::exp(p.g[h]);
    for (int64_t t = 0; t < p.T; ++t) {
      const float* q = p.q + t * s.q + h * d;
      const float* k = p.k + t * s.k + h * d;
      const float* v = p.v + t * s.v + h * d;
      float* o = p.o + t * s.o + h * d;
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) S[a * d + b] = decay * S[a * d + b] + k[a] * v[b];
      for (int64_t b = 0; b < d; ++b) {
        double acc = 0.0;
        for (int64_t a = 0; a < d; ++a) acc += double(q[a] * p.scale) * double(S[a * d + b]);
        o[b] = float(acc);
      }
    }
  }
}

void lightning_chunked(const LightningParams& p) {
  LING_CHECK(p.chunk > 0, "lightning: chunk size must be positive");
  const Strides s = strides_of(p);
  const int64_t d = p.d, C = p.chunk;
#pragma omp parallel for if (p.nh > 1 && p.T * d * d * p.nh > (1 << 22))
  for (int64_t h = 0; h < p.nh; ++h) {
    float* S = p.state + h * d * d;
    const double g = p.g[h];
    std::vector<double> qk(C * C);
    std::vector<double> acc(d);
    std::vector<double> Snew(d * d), wv(d);
    for (int64_t c0 = 0; c0 < p.T; c0 += C) {
      const int64_t n = std::min(C, p.T - c0);
      // Intra-chunk scores (q_i · k_j) for j ≤ i.
      for (int64_t i = 0; i < n; ++i) {
        const float* q = p.q + (c0 + i) * s.q + h * d;
        for (int64_t j = 0; j <= i; ++j) {
          const float* k = p.k + (c0 + j) * s.k + h * d;
          double dot = 0.0;
#pragma omp simd reduction(+ : dot)
          for (int64_t a = 0; a < d; ++a) dot += double(q[a]) * double(k[a]);
          qk[i * C + j] = dot * std::exp(g * double(i - j));
          if (p.bf16_operands) qk[i * C + j] = round_bf16(float(qk[i * C + j]));
        }
      }
      // o_i = scale · [ e^{g(i+1)} q_i S0 + Σ_{j≤i} e^{g(i−j)} (q_i·k_j) v_j ]   (local index i from 0)
      for (int64_t i = 0; i < n; ++i) {
        const float* q = p.q + (c0 + i) * s.q + h * d;
        const double di = std::exp(g * double(i + 1));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t a = 0; a < d; ++a) {
          const double qa = double(q[a]) * di;
          const float* Sa = S + a * d;
          if (p.bf16_operands) {
            for (int64_t b = 0; b < d; ++b) acc[b] += qa * double(round_bf16(Sa[b]));
            continue;
          }
#pragma omp simd
          for (int64_t b = 0; b < d; ++b) acc[b] += qa * double(Sa[b]);
        }
        for (int64_t j = 0; j <= i; ++j) {
          const float* v = p.v + (c0 + j) * s.v + h * d;
          const double w = qk[i * C + j];
#pragma omp simd
          for (int64_t b = 0; b < d; ++b) acc[b] += w * double(v[b]);
        }
        float* o = p.o + (c0 + i) * s.o + h * d;
        for (int64_t b = 0; b < d; ++b) o[b] = float(acc[b] * double(p.scale));
      }
      // S_n = e^{g n} S0 + Σ_j e^{g(n−1−j)} k_jᵀ v_j
      const double dn = std::exp(g * double(n));
      for (int64_t x = 0; x < d * d; ++x) Snew[x] = dn * double(S[x]);
      for (int64_t j = 0; j < n; ++j) {
        const float* k = p.k + (c0 + j) * s.k + h * d;
        const float* v = p.v + (c0 + j) * s.v + h * d;
        const double w = std::exp(g * double(n - 1 - j));
        // bf16_operands: the kernel's decayed value, bf16(fp32(e^{g(n−1−j)}) · v) with one fp32 product.
        const float wf = float(w);
        for (int64_t b = 0; b < d; ++b) wv[b] = p.bf16_operands ? double(round_bf16(wf * v[b])) : w * double(v[b]);
        for (int64_t a = 0; a < d; ++a) {
          const double ka = k[a];
#pragma omp simd
          for (int64_t b = 0; b < d; ++b) Snew[a * d + b] += ka * wv[b];
        }
      }
      for (int64_t x = 0; x < d * d; ++x) S[x] = float(Snew[x]);
    }
  }
}

}  // namespace ling::ref
