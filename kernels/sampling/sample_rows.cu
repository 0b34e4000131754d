// Sampling on the device (sampling.h, ref::sample_with_draw), row by row: greedy rows through the argmax kernel;
// a sampled row's logits copied as radix keys (−0 made +0, so that it ties with +0 as in the host's `>`) with
// their indices, sorted by descending key with cub's stable radix sort (ties keep index order, as the host's
// stable_sort); k_probs (one CTA per 1024 sorted values) writes the probabilities exp(v/T − max) in double and
// each chunk's mass; k_pick (one CTA) adds the chunk masses in order, finds the top_p cut and the drawn token by
// walking the chunk masses to the chunk that crosses the target and scanning inside it. The in-chunk scans run in
// one fixed order in both kernels, so a chunk's mass equals its scan's last prefix bit for bit.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>

#include "common/check.h"
#include "ling/kernels/sampling.h"

namespace ling::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 4 * kThreads;  // sorted values per CTA of k_probs and per scan of k_pick

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

struct Layout {
  size_t keys_in, keys_out, vals_in, vals_out, prob, part, temp, temp_bytes, total;
};
Layout layout(int64_t V) {
  Layout l{};
  size_t at = 0;
  l.keys_in = at, at += align256(sizeof(float) * size_t(V));
  l.keys_out = at, at += align256(sizeof(float) * size_t(V));
  l.vals_in = at, at += align256(sizeof(int32_t) * size_t(V));
  l.vals_out = at, at += align256(sizeof(int32_t) * size_t(V));
  l.prob = at, at += align256(sizeof(double) * size_t(V));
  l.part = at, at += align256(sizeof(double) * size_t((V + kChunk - 1) / kChunk));
  l.temp = at;
  l.temp_bytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(nullptr, l.temp_bytes, static_cast<const float*>(nullptr),
                                            static_cast<float*>(nullptr), static_cast<const int32_t*>(nullptr),
                                            static_cast<int32_t*>(nullptr), int(V));
  l.total = at + align256(l.temp_bytes);
  return l;
}

__global__ void k_keys(const float* __restrict__ row, int64_t V, float* __restrict__ keys, int32_t* __restrict__ vals) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < V; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = row[i];
    keys[i] = v == 0.0f ? 0.0f : v;
    vals[i] = int32_t(i);
  }
}

// In-CTA inclusive scan of 4 consecutive values per thread, in a fixed order (the same inputs give the same
// bits in k_probs and k_pick): v[j] become the prefixes within the chunk. Every thread must call it.
__device__ void block_scan4(double (&v)[4], double* warp_tot) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  v[1] += v[0], v[2] += v[1], v[3] += v[2];
  double inc = v[3];
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  const double up = __shfl_up_sync(0xffffffffu, inc, 1);
  const double excl = lane ? up : 0.0;
  if (lane == 31) warp_tot[w] = inc;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int k = 1; k < kThreads / 32; ++k) warp_tot[k] += warp_tot[k - 1];
  __syncthreads();
  const double before = (w ? warp_tot[w - 1] : 0.0) + excl;
#pragma unroll
  for (int j = 0; j < 4; ++j) v[j] = before + v[j];
  __syncthreads();  // warp_tot is reused by the next call
}

// prob[i] = exp(v_i / T − v_0 / T) in double over the sorted prefix [0, n) (as the host: double(v) / T);
// part[g] = the last in-chunk prefix of chunk g.
__global__ void __launch_bounds__(kThreads) k_probs(const float* __restrict__ keys, int64_t n, float T,
                                                    double* __restrict__ prob, double* __restrict__ part) {
  __shared__ double warp_tot[kThreads / 32];
  const double mx = double(keys[0]) / double(T);
  const int64_t i0 = int64_t(blockIdx.x) * kChunk + 4 * threadIdx.x;
  double v[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    v[j] = i0 + j < n ? exp(double(keys[i0 + j]) / double(T) - mx) : 0.0;
    if (i0 + j < n) prob[i0 + j] = v[j];
  }
  block_scan4(v, warp_tot);
  if (threadIdx.x == kThreads - 1) part[blockIdx.x] = v[3];
}

// The first index i in [0, limit) whose cumulative mass C_i (Σ part of the earlier chunks, in order, plus the
// in-chunk prefix) has x < C_i (strict) or C_i >= x; limit when none. That C_i goes to *c_at when set.
__device__ int64_t first_reaching(const double* prob, const double* part, int64_t G, int64_t limit, double x,
                                  bool strict, double* warp_tot, double* c_at) {
  __shared__ int64_t g_hit;
  __shared__ double base;
  __shared__ unsigned long long found;
  if (threadIdx.x == 0) {
    double c = 0.0;
    g_hit = -1;
    for (int64_t g = 0; g < G && g * kChunk < limit; ++g) {
      const double nc = c + part[g];
      if (strict ? x < nc : nc >= x) {
        g_hit = g;
        break;
      }
      c = nc;
    }
    base = c;
    found = (unsigned long long)limit;
  }
  __syncthreads();
  const int64_t g = g_hit;
  if (g < 0) return limit;  // uniform across the CTA
  const int64_t i0 = g * kChunk + 4 * threadIdx.x;
  double v[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) v[j] = i0 + j < limit ? prob[i0 + j] : 0.0;
  block_scan4(v, warp_tot);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const double c = base + v[j];
    if (i0 + j < limit && (strict ? x < c : c >= x)) {
      atomicMin(&found, (unsigned long long)(i0 + j));
      break;
    }
  }
  __syncthreads();
  const int64_t hit = int64_t(found);
#pragma unroll
  for (int j = 0; j < 4; ++j)
    if (c_at && i0 + j == hit) *c_at = base + v[j];
  __syncthreads();
  return hit;
}

// One CTA: the total mass, the top_p cut and the draw over the sorted probabilities of k_probs.
__global__ void __launch_bounds__(kThreads) k_pick(const int32_t* __restrict__ vals, const double* __restrict__ prob,
                                                   const double* __restrict__ part, int64_t n, SampleSpec sp,
                                                   int32_t* __restrict__ out) {
  __shared__ double warp_tot[kThreads / 32], mass, at;
  const int64_t G = (n + kChunk - 1) / kChunk;
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int64_t g = 0; g < G; ++g) s += part[g];
    mass = s;
  }
  __syncthreads();
  int64_t keep = n;
  double kept = mass;
  if (sp.top_p < 1.0f) {  // the smallest prefix whose share of the mass reaches top_p
    const int64_t i = first_reaching(prob, part, G, n, double(sp.top_p) * mass, false, warp_tot, &at);
    if (i < n) keep = i + 1, kept = at;
  }
  const double u = double(sp.draw >> 11) * 0x1.0p-53 * kept;
  const int64_t i = first_reaching(prob, part, G, keep, u, true, warp_tot, nullptr);
  if (threadIdx.x == 0) *out = vals[i < keep ? i : keep - 1];
}

}  // namespace

size_t sample_rows_workspace_bytes(int64_t n, int64_t V) {
  (void)n;
  return layout(std::max<int64_t>(V, 1)).total;
}

void launch_sample_rows(const SampleRowsParams& p, cudaStream_t stream) {
  const int64_t ld = p.ld ? p.ld : p.V;
  LING_CHECK(p.V >= 1 && p.V <= INT32_MAX && ld >= p.V, "launch_sample_rows: V = ", p.V, ", ld = ", ld, " invalid");
  LING_CHECK(p.n >= 0, "launch_sample_rows: n = ", p.n, " is negative");
  if (p.n == 0) return;
  LING_CHECK(p.logits && p.specs && p.ids, "launch_sample_rows: logits, specs or ids is null");
  bool any = false;
  for (int64_t r = 0; r < p.n; ++r) {
    const SampleSpec& sp = p.specs[r];
    LING_CHECK(sp.top_k >= 0, "launch_sample_rows: row ", r, " has top_k ", sp.top_k, " (need top_k >= 0)");
    any = any || sp.temperature > 0.0f;
  }
  if (!any) {  // greedy rows only: one launch
    ArgmaxRowsParams a;
    a.logits = p.logits, a.ids = p.ids, a.n = p.n, a.V = p.V, a.ld = ld;
    launch_argmax_rows(a, stream);
    return;
  }
  LING_CHECK(p.workspace != nullptr, "launch_sample_rows: the workspace (sample_rows_workspace_bytes) is null");
  const Layout l = layout(p.V);
  char* ws = static_cast<char*>(p.workspace);
  float *keys_in = reinterpret_cast<float*>(ws + l.keys_in), *keys_out = reinterpret_cast<float*>(ws + l.keys_out);
  int32_t *vals_in = reinterpret_cast<int32_t*>(ws + l.vals_in), *vals_out = reinterpret_cast<int32_t*>(ws + l.vals_out);
  double* prob = reinterpret_cast<double*>(ws + l.prob);
  double* part = reinterpret_cast<double*>(ws + l.part);
  for (int64_t r = 0; r < p.n; ++r) {
    const SampleSpec& sp = p.specs[r];
    const float* row = p.logits + r * ld;
    if (sp.temperature <= 0.0f) {
      ArgmaxRowsParams a;
      a.logits = row, a.ids = p.ids + r, a.n = 1, a.V = p.V, a.ld = ld;
      launch_argmax_rows(a, stream);
      continue;
    }
    k_keys<<<unsigned(std::min<int64_t>((p.V + 255) / 256, 1024)), 256, 0, stream>>>(row, p.V, keys_in, vals_in);
    size_t temp_bytes = l.temp_bytes;
    LING_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(ws + l.temp, temp_bytes, keys_in, keys_out, vals_in,
                                                              vals_out, int(p.V), 0, 32, stream));
    const int64_t n = sp.top_k > 0 ? std::min<int64_t>(sp.top_k, p.V) : p.V, G = (n + kChunk - 1) / kChunk;
    k_probs<<<unsigned(G), kThreads, 0, stream>>>(keys_out, n, sp.temperature, prob, part);
    k_pick<<<1, kThreads, 0, stream>>>(vals_out, prob, part, n, sp, p.ids + r);
    LING_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace ling::kernels
