// Reference MoE router (architecture.md §2.4: sigmoid, selection bias, group-limited top-k with ties broken by
// lower index, renormalised unbiased weights × routed_scaling_factor) and token sampling (greedy, temperature,
// top-k, top-p with a splitmix64 generator).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::ref {

namespace {
// Indices of the k largest values, descending; equal values keep the lower index first.
std::vector<int64_t> topk_desc(const std::vector<float>& v, int64_t k) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  idx.resize(k);
  return idx;
}
}  // namespace

void moe_route(const MoeRouteParams& p) {
  LING_CHECK(p.n_group > 0 && p.E % p.n_group == 0, "moe_route: ", p.E, " experts not divisible by n_group ", p.n_group);
  LING_CHECK(p.topk_group >= 1 && p.topk_group <= p.n_group, "moe_route: topk_group ", p.topk_group, " not in [1, ", p.n_group, "]");
  const int64_t per = p.E / p.n_group;
  LING_CHECK(p.k >= 1 && p.k <= p.topk_group * per, "moe_route: top-k ", p.k, " exceeds the ", p.topk_group * per, " experts of the kept groups");
  const float ninf = -std::numeric_limits<float>::infinity();
#pragma omp parallel for if (p.rows * p.E > (1 << 16))
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* lg = p.logits + r * p.E;
    std::vector<float> s(p.E), sel(p.E), gscore(p.n_group);
    for (int64_t e = 0; e < p.E; ++e) {
      s[e] = 1.0f / (1.0f + std::exp(-lg[e]));
      sel[e] = s[e] + (p.bias ? p.bias[e] : 0.0f);
    }
    for (int64_t g = 0; g < p.n_group; ++g) {
      float a = ninf, b = ninf;  // top-2 of the group
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        const float x = sel[e];
        if (x > a) { b = a; a = x; } else if (x > b) { b = x; }
      }
      gscore[g] = per >= 2 ? a + b : a;
    }
    const std::vector<int64_t> keep = topk_desc(gscore, p.topk_group);
    std::vector<float> masked(p.E, ninf);
    for (int64_t g : keep)
      for (int64_t e = g * per; e < (g + 1) * per; ++e) masked[e] = sel[e];
    const std::vector<int64_t> ids = topk_desc(masked, p.k);
    float sum = 0.0f;
    for (int64_t i = 0; i < p.k; ++i) sum += s[ids[i]];
    const float denom = p.k > 1 ? sum + 1e-20f : 1.0f;
    for (int64_t i = 0; i < p.k; ++i) {
      p.topk_ids[r * p.k + i] = int32_t(ids[i]);
      p.topk_weights[r * p.k + i] = (s[ids[i]] / denom) * float(p.routed_scaling_factor);
    }
  }
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

uint64_t splitmix64(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t sample_draw(const SamplingParams& p, uint64_t* rng_state) {
  return p.temperature > 0.0f ? splitmix64(rng_state) : 0;
}

int64_t sample(const SamplingParams& p, uint64_t* rng_state) { return sample_with_draw(p, sample_draw(p, rng_state)); }

int64_t sample_with_draw(const SamplingParams& p, uint64_t draw) {
  LING_CHECK(p.vocab > 0, "sample: empty logits");
  if (p.temperature <= 0.0f) return argmax(p.logits, p.vocab);
  std::vector<int64_t> idx(p.vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return p.logits[a] > p.logits[b]; });
  int64_t n = p.top_k > 0 ? std::min(p.top_k, p.vocab) : p.vocab;
  std::vector<double> prob(n);
  const double mx = double(p.logits[idx[0]]) / p.temperature;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    prob[i] = std::exp(double(p.logits[idx[i]]) / p.temperature - mx);
    sum += prob[i];
  }
  if (p.top_p < 1.0f) {
    double c = 0.0;
    int64_t keep = n;
    for (int64_t i = 0; i < n; ++i) {
      c += prob[i] / sum;
      if (c >= double(p.top_p)) { keep = i + 1; break; }
    }
    n = keep;
    sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += prob[i];
  }
  const double u = double(draw >> 11) * 0x1.0p-53 * sum;
  double c = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    c += prob[i];
    if (u < c) return idx[i];
  }
  return idx[n - 1];
}

}  // namespace ling::ref
