// Lightning prefill of the CUDA backend in the chunked form of ref::lightning_chunked (architecture.md §2.6),
// fp32: one block per head keeps the head's state S [d, d] in shared memory and walks the sequence in chunks of
// 32 tokens — intra-chunk scores (q_i·k_j)·e^{g(i−j)} for j ≤ i, outputs scale·(e^{g(i+1)} q_i S + Σ_j s_ij v_j),
// then S ← e^{g n} S + Σ_j e^{g(n−1−j)} k_jᵀ v_j — so the state never leaves the SM and each token costs O(d²/C)
// instead of a full pass over S. Limits: head dims up to 160 (S must fit in shared memory); only nh blocks run
// (the tensor-core kernel of kernels/lightning is the fast path for head dim 128 with bf16 inputs).
#include <cmath>

#include "kernels.cuh"

namespace ling::cuda {
namespace {

constexpr int kChunk = 32;

size_t smem_floats(int64_t d) { return size_t(d * d + 3 * kChunk * d + kChunk * kChunk + kChunk); }

__global__ void __launch_bounds__(256) k_lightning_chunked(const float* q, const float* k, const float* v, int64_t ld,
                                                           float* o, int64_t ldo, float* state, const float* g,
                                                           int64_t T, int64_t d, float scale) {
  extern __shared__ float sm[];
  float* S = sm;                   // [d, d]
  float* Q = S + d * d;            // [C, d]
  float* Kt = Q + kChunk * d;      // [d, C] (transposed: conflict-free score loop)
  float* V = Kt + kChunk * d;      // [C, d]
  float* P = V + kChunk * d;       // [C, C] decayed scores
  float* W = P + kChunk * kChunk;  // [C] decays e^{g(n−1−j)} of the state update
  const int64_t h = blockIdx.x;
  const float gh = g[h];
  float* Sg = state + h * d * d;
  for (int64_t x = threadIdx.x; x < d * d; x += blockDim.x) S[x] = Sg[x];
  for (int64_t c0 = 0; c0 < T; c0 += kChunk) {
    const int64_t n = min(int64_t(kChunk), T - c0);
    __syncthreads();  // S updated / previous chunk consumed
    for (int64_t x = threadIdx.x; x < n * d; x += blockDim.x) {
      const int64_t i = x / d, a = x % d, row = (c0 + i) * ld + h * d + a;
      Q[x] = q[row];
      Kt[a * kChunk + i] = k[row];
      V[x] = v[row];
    }
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) W[j] = expf(gh * float(n - 1 - j));
    __syncthreads();
    for (int64_t x = threadIdx.x; x < kChunk * kChunk; x += blockDim.x) {
      const int64_t i = x / kChunk, j = x % kChunk;
      float s = 0.0f;
      if (i < n && j <= i) {
        for (int64_t a = 0; a < d; ++a) s += Q[i * d + a] * Kt[a * kChunk + j];
        s *= expf(gh * float(i - j));
      }
      P[x] = s;
    }
    __syncthreads();
    for (int64_t x = threadIdx.x; x < n * d; x += blockDim.x) {
      const int64_t i = x / d, b = x % d;
      float inter = 0.0f;
      for (int64_t a = 0; a < d; ++a) inter += Q[i * d + a] * S[a * d + b];
      float intra = 0.0f;
      for (int64_t j = 0; j <= i; ++j) intra += P[i * kChunk + j] * V[j * d + b];
      o[(c0 + i) * ldo + h * d + b] = scale * (expf(gh * float(i + 1)) * inter + intra);
    }
    __syncthreads();  // S is read above before it is updated below
    const float dn = expf(gh * float(n));
    for (int64_t x = threadIdx.x; x < d * d; x += blockDim.x) {
      const int64_t a = x / d, b = x % d;
      float acc = dn * S[x];
      for (int64_t j = 0; j < n; ++j) acc += W[j] * Kt[a * kChunk + j] * V[j * d + b];
      S[x] = acc;
    }
  }
  __syncthreads();
  for (int64_t x = threadIdx.x; x < d * d; x += blockDim.x) Sg[x] = S[x];
}

}  // namespace

bool lightning_chunked_supported(int64_t d) { return smem_floats(d) * sizeof(float) <= size_t(200) << 10; }

void lightning_chunked(const float* q, const float* k, const float* v, int64_t ld, float* o, int64_t ldo, float* state,
                       const float* g, int64_t T, int64_t nh, int64_t d, float scale, cudaStream_t s) {
  if (T * nh == 0) return;
  const size_t bytes = smem_floats(d) * sizeof(float);
  cudaFuncSetAttribute(k_lightning_chunked, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  k_lightning_chunked<<<unsigned(nh), 256, bytes, s>>>(q, k, v, ld, o, ldo, state, g, T, d, scale);
}

}  // namespace ling::cuda
